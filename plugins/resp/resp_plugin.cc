// resp: a Redis-compatible key-value server (RESP2), see resp_handler.h and README.md.
#include "plexus/plugin_export.h"
#include "resp_handler.h"

PLEXUS_PLUGIN("resp", "Redis protocol (RESP2) key-value store", plexus::resp::RespFactory)
