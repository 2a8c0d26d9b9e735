//! fail2ban's `bantime.formula` and `bantime.factor`: small Python expressions, read by our
//! own parser and evaluated by our own interpreter (no Python, no shell).
//!
//! The language is the part of Python the stock examples and fail2ban's documentation use:
//! numbers (int and float, with Python's promotion and true division), `+ - * / // % **`,
//! `<< >> & | ^ ~`, comparisons (chained, as in Python), `and`/`or`/`not`,
//! `a if cond else b`, parentheses, the names `ban.Time`, `ban.Count`, `banFactor`, `True`,
//! `False`, and the functions `min`, `max`, `abs`, `int`, `float`, `round`, `pow`,
//! `math.exp`, `math.log`, `math.log2`, `math.log10`, `math.sqrt`, `math.pow`,
//! `math.floor`, `math.ceil`. Unknown names are refused when the expression is read, so a
//! typo is a configuration error, not a failure at the first ban. Pure: no I/O.
//!
//! `parse` reads text into an expression tree, `eval` computes it.

mod eval;
mod parse;

use parse::Expr;

/// A formula that cannot be read or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {why}")]
pub struct FormulaError {
    pub text: String,
    pub why: String,
}

/// A value as Python would have it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    #[must_use]
    pub fn as_f64(self) -> f64 {
        match self {
            #[expect(clippy::cast_precision_loss, reason = "Python's int → float promotion")]
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn truthy(self) -> bool {
        match self {
            Num::Int(i) => i != 0,
            Num::Float(f) => f != 0.0,
        }
    }
}

/// The names a formula may read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Vars {
    /// `ban.Time`: the jail's ban time, in seconds.
    pub time: Num,
    /// `ban.Count`: how many times the address was banned before.
    pub count: i64,
    /// `banFactor`: the jail's `bantime.factor`.
    pub factor: Num,
}

/// A formula, read once and evaluated at every ban.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    text: String,
    expr: Expr,
}

impl Formula {
    /// Reads `text`; `vars` says whether `ban.Time`, `ban.Count` and `banFactor` may appear
    /// (a `bantime.factor` is a constant expression).
    pub fn parse(text: &str, vars: bool) -> Result<Self, FormulaError> {
        let tokens = parse::lex(text).map_err(|why| FormulaError {
            text: text.into(),
            why,
        })?;
        let mut parser = parse::Parser {
            tokens,
            pos: 0,
            vars,
        };
        let expr = parser
            .ternary()
            .and_then(|e| match parser.peek() {
                None => Ok(e),
                Some(t) => Err(format!("unexpected `{t}`")),
            })
            .map_err(|why| FormulaError {
                text: text.into(),
                why,
            })?;
        Ok(Self {
            text: text.into(),
            expr,
        })
    }

    /// The formula as written.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the formula (Python's semantics for the operators it has).
    pub fn eval(&self, vars: &Vars) -> Result<Num, FormulaError> {
        eval::eval(&self.expr, vars).map_err(|why| FormulaError {
            text: self.text.clone(),
            why,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: Vars = Vars {
        time: Num::Int(600),
        count: 3,
        factor: Num::Int(1),
    };

    fn eval_text(text: &str) -> Result<Num, FormulaError> {
        Formula::parse(text, true)?.eval(&VARS)
    }

    #[test]
    fn python_semantics() {
        // Each expected value is what Python 3 prints for the expression (ban.Time = 600,
        // ban.Count = 3, banFactor = 1).
        use Num::{Float, Int};
        let cases: [(&str, Num); 33] = [
            (
                "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor",
                Int(4800),
            ),
            ("7 // 2", Int(3)),
            ("-7 // 2", Int(-4)),
            ("7 // -2", Int(-4)),
            ("-7 % 3", Int(2)),
            ("7 % -3", Int(-2)),
            ("2 ** -1", Float(0.5)),
            ("2 ** 3 ** 2", Int(512)),
            ("-2 ** 2", Int(-4)),
            ("1 < 2 < 3", Int(1)),
            ("3 > 2 > 2", Int(0)),
            ("not 0 and 5", Int(5)),
            ("0 or 4", Int(4)),
            ("min(3, 1.5, 2)", Float(1.5)),
            ("max(ban.Count, 2)", Int(3)),
            ("int(7.9)", Int(7)),
            ("round(2.5)", Int(2)),
            ("round(3.5)", Int(4)),
            ("float(1)/4", Float(0.25)),
            ("10 / 4", Float(2.5)),
            ("1e3 + 1", Float(1001.0)),
            ("~5", Int(-6)),
            ("6 & 3 | 8 ^ 1", Int(11)),
            ("abs(-3)", Int(3)),
            ("math.floor(2.7) + math.ceil(2.1)", Int(5)),
            ("100 if ban.Count > 2 else 50", Int(100)),
            ("True + True", Int(2)),
            ("math.log(8, 2)", Float(3.0)),
            ("math.sqrt(16)", Float(4.0)),
            ("pow(2, 10)", Int(1024)),
            ("1 + 2 * 3 - 4 / 2", Float(5.0)),
            ("(1 + 2) * 3", Int(9)),
            ("2 << 3 >> 1", Int(8)),
        ];
        for (text, want) in cases {
            assert_eq!(eval_text(text).unwrap(), want, "{text}");
        }
        let aggressive = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)";
        let got = eval_text(aggressive).unwrap().as_f64();
        assert!((got - 12_051.322_153_912_6).abs() < 1e-6, "{got}");
    }

    #[test]
    fn what_it_refuses() {
        let cases = [
            ("ban.Tim * 2", "unknown name `ban.Tim`"),
            ("open(1)", "unknown function `open`"),
            ("__import__('os')", "unexpected character `'`"),
            ("ban.Time *", "the expression ends too early"),
            ("(ban.Time", "expected `)` at the end"),
            ("ban.Time 2", "unexpected `2`"),
            ("1 if ban.Count", "`if` without `else`"),
            ("a = 1", "`=` is no operator here (comparison is `==`)"),
            ("min()", "`min` does not take 0 argument(s)"),
            (
                "99999999999999999999",
                "invalid number `99999999999999999999`",
            ),
        ];
        for (text, why) in cases {
            let err = Formula::parse(text, true).unwrap_err();
            assert_eq!(err.why, why, "{text}");
            assert_eq!(err.to_string(), format!("`{text}`: {why}"));
        }
        assert_eq!(
            Formula::parse("ban.Time * 2", false).unwrap_err().why,
            "`ban.Time` cannot be used here"
        );
    }

    #[test]
    fn evaluation_errors() {
        for (text, why) in [
            ("1 / 0", "division by zero"),
            (
                "1 << 1.5",
                "a bitwise operator (`<<`, `>>`, `&`, `|`, `^`) needs whole numbers",
            ),
            ("1 << 70", "the shift overflows"),
            ("math.log(0)", "math domain error (log)"),
            ("10.0 ** 400", "the result is not a finite number"),
        ] {
            assert_eq!(eval_text(text).unwrap_err().why, why, "{text}");
        }
        // Integers that overflow continue as floats, as Python's grow.
        assert_eq!(
            eval_text("2 ** 64").unwrap(),
            Num::Float(18_446_744_073_709_551_616.0)
        );
    }
}
