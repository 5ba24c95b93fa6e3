#pragma once
// PLEXUS_PLUGIN(name, description, FactoryType) exports a plugin's descriptor with Boost.DLL.
// FactoryType derives from plexus::PluginFactory and has a constructor taking
// (const plexus::PluginArgs&). Use it once, in one source file of the plugin.
//
// The descriptor records the plugin API version and the plugin's build signature, both constants
// of the plugin's own compilation (currentBuildSignature() is consteval, so it is worked out with
// the plugin's compiler and flags, never taken from the server's libplexus at run time).

#include <boost/dll/alias.hpp>

#include "plexus/plugin.h"

#define PLEXUS_PLUGIN(plugin_name, plugin_description, FactoryType)                   \
  namespace plexus_plugin_detail {                                                   \
  std::unique_ptr<::plexus::PluginFactory> create(const ::plexus::PluginArgs& args) { \
    return std::make_unique<FactoryType>(args);                                      \
  }                                                                                  \
  constinit const ::plexus::PluginDescriptor descriptor = {                          \
      ::plexus::kPluginApiVersion, ::plexus::currentBuildSignature(), plugin_name,   \
      plugin_description, &create};                                                  \
  }                                                                                  \
  BOOST_DLL_ALIAS(plexus_plugin_detail::descriptor, plexus_plugin_descriptor)
