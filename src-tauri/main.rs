// No console window on Windows release builds; harmless elsewhere.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

// mimalloc serves the Rust side's allocations (MLX's C++ keeps its own): the gateway's
// translated paths build and drop many small JSON values per request, and with glibc's
// malloc they ran 17 % slower at 16 connections (make bench-gateway; profiles showed
// malloc/free at ~10 % of the gateway's CPU).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(switchyard::cli::main());
}
