//! `hostd gen-docs` (hidden; used when building packages): the man page
//! and shell completions; with `--reference`, the reference pages made
//! from the permission and event tables (`docs/capabilities.md`,
//! `docs/events.md`).

use std::path::Path;

/// The man page and completions come from the same clap definition the
/// binary parses with, so they cannot drift from it.
pub fn write(cmd: clap::Command, out: &Path, reference: bool) -> std::io::Result<()> {
    use clap_complete::Shell;
    if reference {
        std::fs::create_dir_all(out)?;
        for (name, text) in hostd::reference::pages() {
            std::fs::write(out.join(name), text)?;
        }
        return Ok(());
    }
    std::fs::create_dir_all(out.join("completions"))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(out.join("hostd.1"), page)?;
    for (shell, file) in [(Shell::Bash, "hostd.bash"), (Shell::Zsh, "_hostd"), (Shell::Fish, "hostd.fish")] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "hostd", &mut text);
        std::fs::write(out.join("completions").join(file), text)?;
    }
    Ok(())
}
