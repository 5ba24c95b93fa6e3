#include "client/command_line.h"

#include <exception>
#include <sstream>

namespace plexus::client {

namespace po = boost::program_options;

absl::Status parseCommandLine(const po::options_description& desc, int argc,
                              const char* const argv[], po::variables_map* vm) {
  try {
    // An empty positional description makes any positional argument an error.
    po::store(po::command_line_parser(argc, argv)
                  .options(desc)
                  .positional(po::positional_options_description())
                  .run(),
              *vm);
    po::notify(*vm);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return absl::OkStatus();
}

std::string helpText(const po::options_description& desc) {
  std::ostringstream out;
  out << desc;
  return out.str();
}

}  // namespace plexus::client
