#pragma once
// Parsing shared by plexus-client's commands: Boost.program_options with no positional arguments,
// errors as values.

#include <string>

#include <boost/program_options.hpp>

#include "absl/status/status.h"

namespace plexus::client {

// Parses argv against `desc` into *vm. Any positional argument, unknown option or bad value gives
// an InvalidArgument status carrying Boost's one-line message.
absl::Status parseCommandLine(const boost::program_options::options_description& desc, int argc,
                              const char* const argv[], boost::program_options::variables_map* vm);

// The option table, as --help prints it.
std::string helpText(const boost::program_options::options_description& desc);

}  // namespace plexus::client
