// Fuzz targets run without a network and must be fast and repeatable: a host name in a fuzzed
// input (`listen = somehost:80`) must not become a DNS query. This getaddrinfo(), linked into the
// fuzz target's executable, takes the place of the C library's (and of the sanitizers' wrapper)
// for every caller, libplexus included: no name resolves. Numeric addresses never reach it
// (InetAddress::resolve parses them itself). Declared as <netdb.h> declares it (not noexcept:
// it is a cancellation point).

#include <netdb.h>

extern "C" int getaddrinfo(const char* __restrict /*node*/, const char* __restrict /*service*/,
                           const struct addrinfo* __restrict /*hints*/,
                           struct addrinfo** __restrict res) {
  if (res != nullptr) *res = nullptr;
  return EAI_NONAME;
}
