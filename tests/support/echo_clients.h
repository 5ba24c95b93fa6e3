#pragma once
// Many echo clients driven by one thread with poll(2): each sends its payload in random-sized
// fragments while reading the echo, and checks every byte. Independent of the framework's own
// client code, so it checks the server with a second implementation.

#include <cstdint>
#include <string>
#include <vector>

#include "plexus/inet_address.h"

namespace plexus::testing {

struct EchoClientResult {
  bool connected = false;
  bool complete = false;  // every byte came back
  bool exact = false;     // and matched
  std::string error;
};

struct EchoClientsOptions {
  size_t max_fragment = 65536;  // fragments are 1..max_fragment bytes
  bool half_close = false;      // shut down the write side when all is sent, expect EOF after
  int timeout_ms = 60000;
};

std::vector<EchoClientResult> runEchoClients(const InetAddress& server,
                                             const std::vector<std::string>& payloads,
                                             uint64_t seed, const EchoClientsOptions& options = {});

}  // namespace plexus::testing
