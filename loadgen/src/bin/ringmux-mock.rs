//! `ringmux-mock`: the mock MCP server as a process. Prints `listening on http://ADDR/mcp`
//! once bound, then serves until killed. Flags: `ringmux-mock --help`.

fn main() -> std::process::ExitCode {
    ringmux_load::mock::cli::run(std::env::args_os().skip(1))
}
