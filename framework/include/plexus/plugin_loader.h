#pragma once
// Loading protocol plugins: shared objects that export a PluginDescriptor (see plugin.h and
// plugin_export.h). Boost.DLL does the loading; it stays out of this header.
//
// Lifetime: the library stays loaded while anything that came from it lives. The LoadedPlugin, the
// factory returned by factory() and every handler that a host made from that factory each keep it
// loaded (the factory's shared_ptr owns a reference to the library), so the LoadedPlugin may be
// dropped as soon as the factory has been handed on.
//
// Loading again: a path that is loaded already (a plugin rebuilt in place, then reloaded) is loaded
// from a private copy (a memfd, known to the dynamic linker as /proc/self/fd/N, the fd held open
// while the copy is loaded), so that each load is a library of its own, with its own statics; the
// file is read anew, and the copy is unmapped and its fd closed once its last reference goes.
// Error messages name the path asked for, never the copy. A library with STB_GNU_UNIQUE symbols
// (GCC's for static variables of inline functions, unless built with -fno-gnu-unique, as
// plexus_add_plugin does) is never unloaded by glibc: the loader logs that once.
//
// Thread safety: loadPlugin() and defaultPluginDirs() may be called from any thread. A LoadedPlugin
// is immutable; the factory is as thread-safe as the plugin makes it (see plugin.h).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "plexus/plugin.h"

namespace plexus {

class LoadedPlugin {
 public:
  struct Library;  // the loaded shared object; defined in plugin_loader.cc

  LoadedPlugin(std::shared_ptr<Library> library, std::string name, std::string description,
               std::string path, std::shared_ptr<PluginFactory> factory);
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  // The name and description the plugin declares (PLEXUS_PLUGIN's first two arguments).
  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  // The file it was loaded from, absolute.
  const std::string& path() const { return path_; }
  // The factory made by the plugin's create() with the load's arguments. Holds the library loaded.
  const std::shared_ptr<PluginFactory>& factory() const { return factory_; }

 private:
  // Declared first so that it is destroyed last, after everything that came from the library.
  std::shared_ptr<Library> library_;
  std::string name_;
  std::string description_;
  std::string path_;
  std::shared_ptr<PluginFactory> factory_;
};

// Loads a plugin and makes its factory with `args`.
//
// `name_or_path` is a path when it contains '/' or ends in ".so" (relative paths are taken from the
// working directory); otherwise it is a plugin name and NAME.so is looked for in each of
// `plugin_dirs`, in order, and the first one found is loaded.
//
// Errors (absl::Status messages, one line each, fit to show a user as they are):
//   NotFound:           plugin 'foo' not found (searched: DIR1, DIR2)
//   FailedPrecondition: 'PATH' is not a loadable shared object: DLERROR
//                       'PATH' has no plexus_plugin_descriptor symbol (not a Plexus plugin)
//                       plugin 'x' was built for plugin API version 7, this server has version 2
//                       plugin 'x' was built with (SIGNATURE), this server with (SIGNATURE), e.g.
//                         (gcc 12, libstdc++ _GLIBCXX_USE_CXX11_ABI=0, std::string 8 bytes,
//                         PluginArgs 48 bytes): another standard library, ABI or debug mode (see
//                         PluginBuildSignature in plugin.h)
//   InvalidArgument:    plugin 'x' rejected its arguments: WHAT
absl::StatusOr<std::shared_ptr<LoadedPlugin>> loadPlugin(
    std::string_view name_or_path, const std::vector<std::string>& plugin_dirs,
    const PluginArgs& args = {});

// Where plugin names are looked for by default, found from the running program (/proc/self/exe):
//   - a program in the bin/ directory of the build tree this library was built in (plexus-server,
//     the tests): that build tree's plugins/ directory;
//   - any other program: PROGRAM_DIR/../LIBDIR/plexus/plugins, the installed layout (LIBDIR as
//     GNUInstallDirs named it when Plexus was configured, e.g. lib), so an installed tree works
//     wherever its prefix has been moved or staged. An installed program never looks in the build
//     tree, nor at the prefix Plexus was configured with.
// The directory need not exist. Empty when /proc/self/exe cannot be read. plexus-server searches
// its --plugin-dir directories first, then these.
//
// Thread safety: any thread; it keeps no state (each call reads /proc/self/exe again).
std::vector<std::string> defaultPluginDirs();

}  // namespace plexus
