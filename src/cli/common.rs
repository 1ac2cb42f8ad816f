//! Helpers shared by subcommands: building middleware connect options from the global
//! flags and the config file, opening the state directory.
//! (Middleware connection: issue #2.)
