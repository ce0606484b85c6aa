// Package cli implements streambus-cli, the command-line client for StreamBus
// (and any broker that speaks the Kafka protocol).
//
// Every command is built on franz-go: kgo for producing and consuming (also
// as a consumer group member), kadm for topic and consumer group
// administration. The package holds no global state: NewRootCommand
// builds a fresh cobra command tree bound to an Env (standard streams and the
// environment), so tests run the real commands in-process against a fake
// broker with captured output, exactly as a user would from a shell.
//
// Conventions shared by all commands:
//
//   - Data goes to stdout (records, tables, benchmark results); diagnostics,
//     progress lines and summaries go to stderr, so output can be piped.
//   - Cancelling the context passed to Execute (SIGINT/SIGTERM in main) stops
//     a command cleanly: consume exits 0 (with --group after committing
//     what it printed and leaving the group); produce stops reading input, still
//     delivers what it read and exits 0 if all of it was acknowledged; bench
//     reports what it measured and exits 1.
//   - Exit codes: 0 success, 1 the command failed, 2 the command line was
//     invalid (unknown flag, bad value, wrong number of arguments).
package cli
