// The main() of a fuzz target when it is not built with libFuzzer (cmake/PlexusFuzz.cmake): runs
// LLVMFuzzerTestOneInput over every file named on the command line and every regular file under
// every directory named there (in name order, so a run is reproducible), each input in a heap
// block of exactly its size, so that AddressSanitizer sees an overread. Arguments starting with
// '-' (libFuzzer's flags) are ignored.
//
// Exit status: 0 when every input ran (it printed "replayed N inputs"); 1 when an argument could
// not be read or no input was found, so that an empty or misplaced corpus fails its test. A crash
// is the target's own (a sanitizer report, an abort).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional, as with libFuzzer.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));

namespace {

namespace fs = std::filesystem;

// Corpus files are seeds and reproducers: small. A bigger one is a mistake, not an input.
constexpr uintmax_t kMaxInputBytes = 16 * 1024 * 1024;

bool replayFile(const fs::path& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size > kMaxInputBytes) {
    std::fprintf(stderr, "replay: cannot use %s: %s\n", path.c_str(),
                 ec ? ec.message().c_str() : "larger than 16 MiB");
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  // Exactly `size` bytes on the heap (new of 0 bytes still gives a distinct pointer).
  auto data = std::make_unique<uint8_t[]>(static_cast<size_t>(size));
  if (!in.read(reinterpret_cast<char*>(data.get()), static_cast<std::streamsize>(size))) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  LLVMFuzzerTestOneInput(data.get(), static_cast<size_t>(size));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> files;
      for (fs::recursive_directory_iterator it(arg, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file()) files.push_back(it->path());
      }
      if (ec) {
        std::fprintf(stderr, "replay: cannot list %s: %s\n", argv[i], ec.message().c_str());
        return 1;
      }
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) {
        if (!replayFile(f)) return 1;
        ++replayed;
      }
    } else {
      if (!replayFile(arg)) return 1;
      ++replayed;
    }
  }
  if (replayed == 0) {
    std::fprintf(stderr, "replay: no input found (usage: %s FILE_OR_DIR...)\n", argv[0]);
    return 1;
  }
  std::printf("replayed %zu inputs\n", replayed);
  return 0;
}
