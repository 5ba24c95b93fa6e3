// A plugin as Plexus built them before plugin API version 3: the same descriptor layout (version,
// build signature, name, description, create), but handler and session classes with fewer virtual
// calls. Loading it would call through the wrong vtable slots: the loader must refuse it by its
// version.

#include <boost/dll/alias.hpp>

#include "plexus/plugin.h"

namespace apiv2 {

const plexus::PluginDescriptor descriptor = {2, plexus::currentBuildSignature(), "apiv2",
                                             "a plugin API version 2 echo", nullptr};

}  // namespace apiv2

BOOST_DLL_ALIAS(apiv2::descriptor, plexus_plugin_descriptor)
