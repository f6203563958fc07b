//! The process's logging: one tracing subscriber writing human-readable or JSON lines to stderr,
//! behind a filter that can be replaced while the process runs (`GET`/`PUT /logspec`, see
//! `http::operations`).
//!
//! A *log spec* is the syntax of `OSN_LOG`: comma-separated directives, each a level (`info`), a
//! target and a level (`osn=debug`, `osn::kafka=trace`), or a target alone (every level), with no
//! spaces. It is the part of tracing-subscriber's `EnvFilter` syntax that [`PATTERN`] describes
//! (the API document's pattern for `LogSpec.spec`); `EnvFilter` then builds the filter. The spec
//! in force is kept as it was given. Processes that never
//! call [`init`] (unit tests, tools embedding the library) have no reloadable filter: [`spec`]
//! answers `None` and [`set_spec`] [`LogSpecError::NotReloadable`].

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogSpecError {
    #[error("invalid log spec '{spec}': {reason}")]
    Invalid { spec: String, reason: String },
    #[error("logging is not reloadable in this process")]
    NotReloadable,
}

/// A filter that can be swapped at run time, and the spec it was built from.
pub struct Reloadable<S> {
    handle: reload::Handle<EnvFilter, S>,
    spec: Mutex<String>,
}

impl<S: 'static> Reloadable<S> {
    /// A reloadable filter layer set to `spec` (already checked), and its handle.
    pub fn new(spec: &str) -> Result<(reload::Layer<EnvFilter, S>, Self), LogSpecError> {
        let (layer, handle) = reload::Layer::new(parse(spec)?);
        Ok((layer, Reloadable { handle, spec: Mutex::new(spec.to_owned()) }))
    }

    /// The spec in force.
    pub fn spec(&self) -> String {
        self.spec.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `spec` in force and returns the one it replaces; an invalid spec changes nothing.
    pub fn set(&self, spec: &str) -> Result<String, LogSpecError> {
        let filter = parse(spec)?;
        let mut current = self.spec.lock().unwrap_or_else(|e| e.into_inner());
        self.handle.reload(filter).map_err(|_| LogSpecError::NotReloadable)?;
        Ok(std::mem::replace(&mut *current, spec.to_owned()))
    }
}

/// The grammar of a spec as a regular expression: the pattern of `LogSpec.spec` in the API
/// document (`http/openapi.json`; a test holds them equal). A target is `::`-separated
/// identifiers (ASCII letters, digits and `_`, not starting with a digit), and a bare level is a
/// target by that rule; the level after `=` is one of [`LEVELS`], in lower case.
pub const PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*(=(off|error|warn|info|debug|trace))?\
                           (,[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*(=(off|error|warn|info|debug|trace))?)*$";

/// The levels a directive can give a target.
pub const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks `spec` against [`PATTERN`]; the reason names the first directive that breaks it.
fn check_grammar(spec: &str) -> Result<(), String> {
    fn identifier(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
    if spec.is_empty() {
        return Err("the spec is empty: give at least a level, such as 'info'".into());
    }
    for (i, directive) in spec.split(',').enumerate() {
        let n = i + 1;
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (target, Some(level)),
            None => (directive, None),
        };
        if !target.split("::").all(identifier) {
            return Err(format!(
                "directive {n} ('{directive}'): '{target}' is not a level or a target (identifiers of ASCII letters, \
                 digits and '_' joined by '::'; no spaces, nothing empty between commas)"
            ));
        }
        if let Some(level) = level.filter(|l| !LEVELS.contains(l)) {
            return Err(format!("directive {n} ('{directive}'): '{level}' is not one of {}", LEVELS.join(", ")));
        }
    }
    Ok(())
}

/// The filter a spec stands for, if it is in the grammar ([`PATTERN`]). An empty spec is refused
/// (`EnvFilter` would read it as "errors only", which nobody asking for it means).
pub fn parse(spec: &str) -> Result<EnvFilter, LogSpecError> {
    let invalid = |reason: String| LogSpecError::Invalid { spec: spec.to_owned(), reason };
    check_grammar(spec).map_err(invalid)?;
    EnvFilter::builder().parse(spec).map_err(|e| invalid(e.to_string()))
}

static LOGGING: OnceLock<Reloadable<Registry>> = OnceLock::new();

/// Installs the process's subscriber: `format` lines on stderr (ANSI colours on a terminal),
/// filtered by `OSN_LOG` if it is set and valid (spaces around it ignored), else by
/// `default_spec`. Call once, first thing.
pub fn init(format: LogFormat, default_spec: &str) {
    let from_env = std::env::var("OSN_LOG").ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let (spec, ignored) = match from_env {
        Some(s) => match parse(&s) {
            Ok(_) => (s, None),
            Err(e) => (default_spec.to_owned(), Some(e)),
        },
        None => (default_spec.to_owned(), None),
    };
    let (filter, reloadable) = Reloadable::new(&spec).expect("the default log spec is valid");
    let ansi = std::io::stderr().is_terminal();
    let registry = Registry::default().with(filter);
    let installed = match format {
        LogFormat::Human => registry.with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init(),
    };
    if installed.is_ok() {
        let _ = LOGGING.set(reloadable);
    }
    if let Some(e) = ignored {
        tracing::warn!(error = %e, default = default_spec, "OSN_LOG ignored");
    }
}

/// The spec in force, or `None` when [`init`] did not run in this process.
pub fn spec() -> Option<String> {
    LOGGING.get().map(Reloadable::spec)
}

/// Puts `spec` in force for the whole process and returns the one it replaces.
pub fn set_spec(spec: &str) -> Result<String, LogSpecError> {
    LOGGING.get().ok_or(LogSpecError::NotReloadable)?.set(spec)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing::Dispatch;
    use tracing_subscriber::layer::{Context, Layer};

    use super::*;

    /// Records the target and level of the events that pass the filter below it.
    struct Record(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Record {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let meta = event.metadata();
            self.0.lock().unwrap().push(format!("{} {}", meta.target(), meta.level()));
        }
    }

    /// A subscriber of its own (not the process's) behind a reloadable filter.
    struct Fixture {
        dispatch: Dispatch,
        logging: Reloadable<Registry>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Fixture {
        fn new(spec: &str) -> Fixture {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let (filter, logging) = Reloadable::new(spec).unwrap();
            let dispatch = Dispatch::new(Registry::default().with(filter).with(Record(seen.clone())));
            Fixture { dispatch, logging, seen }
        }

        /// [`Reloadable::set`] with this subscriber as the default, as the process's is: when one
        /// subscriber exists, tracing rebuilds its callsite cache against the default one.
        fn set(&self, spec: &str) -> Result<String, LogSpecError> {
            tracing::dispatcher::with_default(&self.dispatch, || self.logging.set(spec))
        }

        /// Which of four events pass the filter.
        fn passing(&self) -> Vec<String> {
            tracing::dispatcher::with_default(&self.dispatch, || {
                tracing::trace!(target: "osn::x", "trace event");
                tracing::debug!(target: "osn::x", "debug event");
                tracing::info!(target: "other", "info event");
                tracing::debug!(target: "other", "debug event");
            });
            std::mem::take(&mut *self.seen.lock().unwrap())
        }
    }

    #[test]
    fn a_valid_spec_is_put_in_force() {
        let check = |spec: &str, want: &[&str]| {
            let fixture = Fixture::new("error");
            assert_eq!(fixture.passing(), Vec::<String>::new());
            assert_eq!(fixture.set(spec), Ok("error".to_owned()), "{spec:?}: answers the previous spec");
            assert_eq!(fixture.logging.spec(), spec, "kept as given");
            assert_eq!(fixture.passing(), want, "{spec:?}");
        };
        check("info,osn=debug", &["osn::x DEBUG", "other INFO"]);
        check("info,osn=trace", &["osn::x TRACE", "osn::x DEBUG", "other INFO"]);
        check("debug,osn=trace", &["osn::x TRACE", "osn::x DEBUG", "other INFO", "other DEBUG"]);
        check("osn", &["osn::x TRACE", "osn::x DEBUG"]);
        check("osn::x=debug,other=info", &["osn::x DEBUG", "other INFO"]);
        check("WARN", &[]);
        check("off", &[]);
    }

    #[test]
    fn successive_specs_replace_each_other() {
        let fixture = Fixture::new("info,osn=debug");
        assert_eq!(fixture.set("info,osn=trace").unwrap(), "info,osn=debug");
        assert_eq!(fixture.passing().len(), 3);
        assert_eq!(fixture.set("info,osn=debug").unwrap(), "info,osn=trace");
        assert_eq!(fixture.passing(), ["osn::x DEBUG", "other INFO"]);
        assert_eq!(fixture.logging.spec(), "info,osn=debug");
    }

    #[test]
    fn an_invalid_spec_is_refused_and_changes_nothing() {
        let check = |spec: &str, reason: &str| {
            let fixture = Fixture::new("info,osn=debug");
            match fixture.set(spec) {
                Err(LogSpecError::Invalid { spec: s, reason: r }) => {
                    assert_eq!(s, spec);
                    assert!(r.contains(reason), "{spec:?}: {r}");
                }
                other => panic!("{spec:?} answered {other:?}"),
            }
            assert_eq!(fixture.logging.spec(), "info,osn=debug", "{spec:?}");
            assert_eq!(fixture.passing(), ["osn::x DEBUG", "other INFO"], "{spec:?}: the old filter is in force");
        };
        check("", "the spec is empty");
        check("  ", "'  ' is not a level or a target");
        check("osn=loud", "");
        check("info,osn=verbose", "");
        check("osn=debug=trace", "'debug=trace' is not one of off, error");
        // Outside the documented grammar, though EnvFilter would take them.
        check(" info", "' info' is not a level or a target");
        check("info,", "directive 2 ('')");
        check("osn=DEBUG", "'DEBUG' is not one of");
        check("osn:x=debug", "'osn:x' is not");
        check("[span]=debug", "'[span]' is not");
        check("9osn", "'9osn' is not");
    }

    /// The checker and the pattern the API document gives agree, on the specs above and on
    /// characters next to the grammar's edges.
    #[test]
    fn the_grammar_is_the_documented_pattern() {
        let doc: serde_json::Value = serde_json::from_str(crate::http::docs::OPENAPI).unwrap();
        let documented = &doc["components"]["schemas"]["LogSpec"]["properties"]["spec"]["pattern"];
        assert_eq!(documented.as_str(), Some(PATTERN), "openapi.json's LogSpec.spec pattern");
        let re = regex::Regex::new(PATTERN).unwrap();
        let specs = [
            "info",
            "WARN",
            "off",
            "osn",
            "_",
            "a1",
            "osn::kafka=trace",
            "info,osn=debug,rdkafka=warn",
            "",
            " ",
            "info,",
            ",info",
            "a::",
            "::a",
            "a:::b",
            "osn=",
            "=debug",
            "osn=loud",
            "osn=Debug",
            "1a",
            "a-b",
            "a.b",
            "a b",
            "info\n",
            "é",
            "osn=debug=trace",
            "a,b,c=off,d::e=error",
        ];
        for spec in specs {
            assert_eq!(check_grammar(spec).is_ok(), re.is_match(spec), "{spec:?}");
        }
    }

    #[test]
    fn errors_name_the_spec() {
        let e = parse("osn=loud").unwrap_err().to_string();
        assert!(e.starts_with("invalid log spec 'osn=loud': "), "{e}");
        assert_eq!(LogSpecError::NotReloadable.to_string(), "logging is not reloadable in this process");
    }

    #[test]
    fn a_process_without_init_has_no_spec_to_change() {
        // The unit test process never calls init.
        assert_eq!(spec(), None);
        assert_eq!(set_spec("debug"), Err(LogSpecError::NotReloadable));
    }
}
