#pragma once
// Streaming mode (stdin is not a terminal): stdin goes to the server in chunks as it is read, and
// the connection's sink writes every reply byte to stdout as it arrives. At EOF the write side is
// shut down and replies are printed until the server closes. Binary-safe.

#include "client/client_connection.h"

namespace plexus::client {

// Returns the exit status: 0 once the server closed, 1 on a local error.
int runStreaming(ClientConnection& conn, int in_fd);

}  // namespace plexus::client
