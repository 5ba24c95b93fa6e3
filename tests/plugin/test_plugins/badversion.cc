// A plugin built for a future plugin API (version 999): the loader must refuse it after reading
// api_version only.

#include <boost/dll/alias.hpp>

#include "plexus/plugin.h"

namespace badversion {

// Only api_version is meant to be read; the rest is deliberately junk for this version's readers.
const plexus::PluginDescriptor descriptor = {999, {}, "badversion", "from the future", nullptr};

}  // namespace badversion

BOOST_DLL_ALIAS(badversion::descriptor, plexus_plugin_descriptor)
