//! `oci-copy SRC DST [--all] [--insecure HOST]...`: the engine of `airlock-gate image copy` without the
//! gate around it, so `bench/oci-copy.sh` can build and time just this crate.

use airlock_oci::{CopyOptions, ImageRef, OpenOptions, copy_with_attachments};

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
    let src_ref = ImageRef::parse(src)?;
    let (source, reference) = src_ref.open_source(&options)?;
    let (destination, tag) = ImageRef::parse(dst)?.open_destination(&options)?;
    let tag = tag.or_else(|| src_ref.tag().map(str::to_string));
    let report = copy_with_attachments(
        source.store(),
        destination.store(),
        &reference,
        tag.as_deref(),
        CopyOptions { all_platforms: all },
    )
    .await?;
    destination.finish().await?;
    println!("{}", report.digest);
    Ok(())
}
