//! Configuring a service in-process the way its binary is configured from the
//! environment: a launcher names settings by their environment variables (as the
//! generated deployables table, compose and Kubernetes do), and each becomes the flag
//! that reads that variable, so a service's own `Config` stays the one definition.

use std::ffi::OsStr;

use clap::{CommandFactory, FromArgMatches};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("`{binary}`: {message}")]
    Invalid { binary: String, message: String },
}

/// The `Config` of `binary` run with `args` and `settings` (environment variable name,
/// value). A setting it does not read is left out: the table gives a caller of a CQRS
/// service both sides' URLs, whichever it calls. Flags win over the process
/// environment, so a setting given here is never overridden by a variable exported in
/// the caller's shell. `tuning` is applied where the command reads it; a name
/// `*_SUFFIX` applies to every variable ending in `_SUFFIX`.
pub fn config<C: CommandFactory + FromArgMatches>(
    binary: &str,
    args: &[&str],
    settings: &[(&str, String)],
    tuning: &[(&str, &str)],
) -> Result<C, LaunchError> {
    let command = C::command();
    let flag = |env: &str| {
        command
            .get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(env)))
            .and_then(|a| a.get_long())
            .map(str::to_string)
    };
    let mut argv: Vec<String> = vec![binary.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    for (env, value) in settings {
        if let Some(long) = flag(env) {
            argv.push(format!("--{long}={value}"));
        }
    }
    // Tuning: `*_SUFFIX` applies to every variable of the command ending so.
    for arg in command.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env().and_then(OsStr::to_str), arg.get_long())
        else {
            continue;
        };
        if settings.iter().any(|(given, _)| *given == env) {
            continue;
        }
        let tuned = tuning
            .iter()
            .find(|(pattern, _)| match pattern.strip_prefix('*') {
                Some(suffix) => env.ends_with(suffix),
                None => *pattern == env,
            });
        if let Some((_, value)) = tuned {
            argv.push(format!("--{long}={value}"));
        }
    }
    let invalid = |e: clap::Error| LaunchError::Invalid {
        binary: binary.to_string(),
        message: e.to_string(),
    };
    let matches = command.try_get_matches_from(argv).map_err(invalid)?;
    C::from_arg_matches(&matches).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Demo {
        #[arg(long, env = "DEMO_DATABASE_URL")]
        database_url: String,
        #[arg(long = "poll", env = "DEMO_POLL_MS", default_value_t = 200)]
        poll_ms: u64,
    }

    #[test]
    fn settings_become_the_flags_that_read_them() {
        let c: Demo = config(
            "demo",
            &[],
            &[("DEMO_DATABASE_URL", "sqlite://x.db".into())],
            &[("DEMO_POLL_MS", "20"), ("NOT_READ_HERE", "1")],
        )
        .expect("parses");
        assert_eq!((c.database_url.as_str(), c.poll_ms), ("sqlite://x.db", 20));
    }

    #[test]
    fn a_tuning_pattern_matches_by_suffix() {
        let c: Demo = config(
            "demo",
            &[],
            &[("DEMO_DATABASE_URL", "sqlite://x.db".into())],
            &[("*_POLL_MS", "7")],
        )
        .expect("parses");
        assert_eq!(c.poll_ms, 7);
    }

    #[test]
    fn a_bad_value_names_the_binary() {
        let e = config::<Demo>(
            "demo",
            &[],
            &[("DEMO_DATABASE_URL", "x".into())],
            &[("DEMO_POLL_MS", "soon")],
        )
        .expect_err("refused");
        assert!(e.to_string().starts_with("`demo`: "), "{e}");
    }
}
