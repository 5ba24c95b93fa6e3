// Every engine, in the order engineNames() lists them: PLEXUS_ENGINE(NAME, MAKE), where MAKE is
// `absl::StatusOr<std::unique_ptr<Engine>> detail::MAKE(const EngineOptions&)`, defined in the
// engine's own .cc. Adding an engine is its two files and one line here. No include guard: read
// by engine_factory.cc only, with PLEXUS_ENGINE defined.
PLEXUS_ENGINE("epoll", makeEpollEngine)
PLEXUS_ENGINE("poll", makePollEngine)
PLEXUS_ENGINE("select", makeSelectEngine)
PLEXUS_ENGINE("uring", makeUringEngine)
