//! Records the git revision for `truenas-agent --version`.
//!
//! `TRUENAS_AGENT_GIT_REV` in the environment wins (builds from a source tarball);
//! otherwise `git rev-parse`, with `-dirty` when tracked files differ from HEAD.
//! The script re-runs when HEAD, the index or the current branch's ref change. The
//! paths come from `git rev-parse --git-path`, so this also holds in a git worktree
//! (where `.git` is a file); a path that does not exist would make cargo re-run the
//! script, and rebuild the crate, on every build.
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TRUENAS_AGENT_GIT_REV");
    println!("cargo:rerun-if-changed=build.rs");
    // The release link reads the code layout (packaging/build-release.sh passes it to lld
    // as --symbol-ordering-file); cargo does not see linker inputs, so a new profile would
    // otherwise leave the old layout in place.
    println!("cargo:rerun-if-changed=../../packaging/layout/truenas-agent.order");
    if let Ok(rev) = std::env::var("TRUENAS_AGENT_GIT_REV") {
        println!("cargo:rustc-env=TRUENAS_AGENT_GIT_REV={rev}");
        return;
    }
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|out| !out.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=TRUENAS_AGENT_GIT_REV={rev}{suffix}");
    let mut watched = vec![
        "HEAD".to_owned(),
        "index".to_owned(),
        "packed-refs".to_owned(),
    ];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
