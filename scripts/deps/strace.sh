# strace, for the durability test (im-http/tests/durability.rs): it runs
# `im-http serve` under strace and checks that each acknowledged send was
# fdatasynced before its answer was written.
# Sourced by scripts/test, which defines need_apt.
need_apt strace strace
