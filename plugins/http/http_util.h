#pragma once
// Small pure helpers of the http plugin: request paths, dates, media types, validators, ranges.
// No state, no I/O: safe from any thread.

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace plexus::http {

// True when `path` (percent-encoded, starting with '/') is already in normal form: no escape, no
// empty, "." or ".." segment. Then it can be used as is.
bool isNormalPath(std::string_view path);

// Percent-decodes `path` and resolves it like a file system would, into *out: empty segments
// ("//") merged, "." dropped, ".." removing the segment before it. *out starts with '/' and ends
// with '/' when the last segment was a directory reference ("/a/", "/a/.", "/a/b/.."). An escape
// that decodes to '/' counts as a separator, as nginx reads it.
// Returns 0, or the status to refuse the request with: 400 for a malformed escape or a NUL, 403
// for a path that climbs above the root ("/../x", "/a/%2e%2e/%2e%2e/x").
int normalizePath(std::string_view path, std::string* out);

// The media type for a file name, by its extension ("application/octet-stream" when unknown).
std::string_view mediaType(std::string_view name);

// IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT", exactly 29 characters.
inline constexpr size_t kHttpDateSize = 29;
void formatHttpDate(time_t t, char* out);
// Reads an IMF-fixdate (the obsolete RFC 850 and asctime forms are not accepted: the header is
// then ignored, as RFC 9110 13.1.3 allows for an invalid date).
bool parseHttpDate(std::string_view s, time_t* t);
// The access log's time: "03/Dec/2026:11:53:08 +0000", exactly 26 characters.
inline constexpr size_t kLogTimeSize = 26;
void formatLogTime(time_t t, char* out);

// The entity tag of a file, as nginx makes it: "<mtime hex>-<size hex>", quotes included.
std::string makeEtag(time_t mtime, uint64_t size);
// The same into `out` (kEtagMaxSize bytes at least); returns its length.
inline constexpr size_t kEtagMaxSize = 2 + 16 + 1 + 16;
size_t formatEtag(time_t mtime, uint64_t size, char* out);
// If-None-Match: "*" or a list of entity tags, compared weakly (RFC 9110 13.1.2).
bool noneMatchHits(std::string_view if_none_match, std::string_view etag);

// A single byte range (RFC 9110 14.2), inclusive.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
};
enum class RangeResult {
  kIgnore,         // no Range, another unit, several ranges or a malformed one: send it all (200)
  kSatisfiable,    // 206 with *range
  kUnsatisfiable,  // 416
};
RangeResult parseRange(std::string_view header, uint64_t size, ByteRange* range);

// "OK", "Not Found", ...; "Unknown" for a code it does not list.
std::string_view reasonPhrase(int status);

}  // namespace plexus::http
