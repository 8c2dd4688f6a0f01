//! `oci-copy SRC DST [--all] [--insecure HOST]...`: the engine of `airlock-gate image copy` without the
//! gate around it, so `bench/oci-copy.sh` can build and time just this crate.

use airlock_oci::{CopyOptions, OpenOptions, copy_references};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut options = OpenOptions::default();
    let mut all = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--insecure" => options
                .insecure_hosts
                .push(args.next().ok_or("--insecure needs a HOST")?),
            _ => positional.push(arg),
        }
    }
    let [src, dst] = positional.as_slice() else {
        return Err("usage: oci-copy SRC DST [--all] [--insecure HOST]...".into());
    };
    let report = copy_references(src, dst, &options, CopyOptions { all_platforms: all }).await?;
    println!("{}", report.digest);
    Ok(())
}
