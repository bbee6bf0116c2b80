//! Glue that lets the unmodified, published mlx-rs run off macOS.

/// mlx-rs seeds its `RandomState` with `mach_approximate_time()`, a macOS function.
/// Off Apple targets we provide the symbol: wall-clock nanoseconds mixed with a
/// monotonic counter, which is all a seed needs. Every final binary links this crate,
/// so the symbol is always there.
#[cfg(not(target_vendor = "apple"))]
#[unsafe(no_mangle)]
pub extern "C" fn mach_approximate_time() -> u64 {
    use std::sync::OnceLock;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};
    static T0: OnceLock<Instant> = OnceLock::new();
    let t0 = *T0.get_or_init(Instant::now);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    wall ^ (t0.elapsed().as_nanos() as u64)
}

/// What `doctor` reports about MLX: its version, the default device, and the result
/// of a tiny computation actually run through mlx-rs (so a broken link or a wrong
/// library shows up here, not in the middle of a request).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MlxProbe {
    pub version: String,
    pub device: String,
    /// `[[1,2],[3,4]] @ [[5],[6]]`, expected `[17, 39]`.
    pub matmul: Vec<f32>,
    pub ok: bool,
}

/// The MLX library version (from mlx-c's `mlx_version`).
pub fn mlx_version() -> String {
    // SAFETY: mlx_string_new/mlx_version/mlx_string_data/mlx_string_free is the documented
    // mlx-c protocol for returning a string; the data pointer is valid until the free.
    unsafe {
        let mut s = mlx_sys::mlx_string_new();
        let rc = mlx_sys::mlx_version(&mut s);
        let out = if rc == 0 {
            let p = mlx_sys::mlx_string_data(s);
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        } else {
            String::new()
        };
        mlx_sys::mlx_string_free(s);
        out
    }
}

pub fn probe() -> Result<MlxProbe, String> {
    use mlx_rs::{Array, Device};
    let device = Device::try_default().map_err(|e| e.to_string())?;
    let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    let b = Array::from_slice(&[5.0f32, 6.0], &[2, 1]);
    let c = a.matmul(&b).map_err(|e| e.to_string())?;
    c.eval().map_err(|e| e.to_string())?;
    let matmul = c.as_slice::<f32>().to_vec();
    Ok(MlxProbe {
        version: mlx_version(),
        device: device.to_string(),
        ok: matmul == [17.0, 39.0],
        matmul,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn mlx_runs_a_matmul_and_reports_its_version() {
        let p = super::probe().unwrap();
        assert_eq!(p.matmul, vec![17.0, 39.0]);
        assert!(p.ok);
        assert!(p.version.starts_with("0."), "version {:?}", p.version);
    }
}
