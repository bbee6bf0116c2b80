// No console window on Windows release builds; harmless elsewhere.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

// mimalloc serves the Rust side's allocations (MLX's C++ keeps its own): the gateway's
// translated paths build and drop many small JSON values per request, and with glibc's
// malloc they ran 17 % slower at 16 connections (make bench-gateway; profiles showed
// malloc/free at ~10 % of the gateway's CPU).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's runtime options (the bundled v3 `mi_option_e`; the crate's bindings do not
// name these two). Its default commits whole arenas eagerly and purges freed memory after
// 1 s: the gateway's peak RSS under load went from 37 to 70 MB (target ≤ 50 MB). Lazily
// committed arenas and prompt purging keep it at ~36 MB with the same throughput.
const MI_OPTION_ARENA_EAGER_COMMIT: libc::c_int = 4;
const MI_OPTION_PURGE_DELAY: libc::c_int = 15;

unsafe extern "C" {
    fn mi_option_get(option: libc::c_int) -> libc::c_long;
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

/// Set the two options, each only if it still has the default its position has in the
/// bundled header (a mimalloc with another option order is left as it is).
fn tune_allocator() {
    // SAFETY: plain getters/setters of mimalloc's option table, with in-range indices.
    unsafe {
        if mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) == 2 {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
        if mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

// Before main: the first arena is reserved at the first allocation, which Rust's runtime
// makes before `main` runs.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        tune_allocator();
    }
    tune
};

#[cfg(target_os = "macos")]
#[used]
#[unsafe(link_section = "__DATA,__mod_init_func")]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        tune_allocator();
    }
    tune
};

fn main() {
    std::process::exit(switchyard::cli::main());
}
