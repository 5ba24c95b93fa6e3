#pragma once
// Streaming mode (stdin is not a terminal): stdin goes to the server in chunks as it is read, and
// the connection's sink writes every reply byte to stdout as it arrives. At EOF the write side is
// shut down and replies are printed until the server closes. Binary-safe. A server that closes
// before it has been sent all of stdin makes it fail.

#include "client/client_connection.h"

namespace plexus::client {

// Returns the exit status: 0 once the server closed, having acknowledged all of stdin; 1 when it
// closed before ("connection closed by server before all input was sent (...)" on stderr), or on
// a local error.
int runStreaming(ClientConnection& conn, int in_fd);

}  // namespace plexus::client
