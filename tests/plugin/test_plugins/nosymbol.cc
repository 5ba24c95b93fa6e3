// A shared object that is not a Plexus plugin: it exports a function, but no descriptor.

extern "C" int plexus_test_nosymbol_answer() { return 42; }
