//! One-line rendering of an error and its causes, for log fields.

use std::error::Error;
use std::fmt;

/// Displays an error and its sources on one line (`outer: inner: root cause`).
/// Log fields get the whole chain; `Display` of a `thiserror` enum alone
/// shows only the outer layer.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a dyn Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

/// [`ErrorChain`] as a `String`.
pub fn error_chain(e: &dyn Error) -> String {
    ErrorChain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn renders_every_cause_in_order() {
        let e = Layer(
            "cannot open camera",
            Some(Box::new(Layer(
                "VIDIOC_S_FMT",
                Some(Box::new(Layer("busy", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "cannot open camera: VIDIOC_S_FMT: busy");
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }
}
