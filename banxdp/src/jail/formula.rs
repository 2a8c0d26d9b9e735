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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Time,
    Count,
    Factor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Abs,
    Int,
    Float,
    Round,
    Pow,
    Exp,
    Log,
    Log2,
    Log10,
    Sqrt,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Num(Num),
    Var(Var),
    Neg(Box<Expr>),
    Invert(Box<Expr>),
    Not(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: each comparison on the previous right-hand side.
    Compare(Box<Expr>, Vec<(Op, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    IfElse {
        then: Box<Expr>,
        cond: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call(Func, Vec<Expr>),
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
        let tokens = lex(text).map_err(|why| FormulaError {
            text: text.into(),
            why,
        })?;
        let mut parser = Parser {
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
        eval(&self.expr, vars).map_err(|why| FormulaError {
            text: self.text.clone(),
            why,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(Num),
    Name(String),
    Sym(&'static str),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Num(Num::Int(i)) => write!(f, "{i}"),
            Token::Num(Num::Float(x)) => write!(f, "{x}"),
            Token::Name(n) => f.write_str(n),
            Token::Sym(s) => f.write_str(s),
        }
    }
}

const SYMBOLS: [&str; 24] = [
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "&", "|",
    "^", "~", "(", ")", ",", ".", "=",
];

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(tokens);
        };
        if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let (num, len) = lex_number(rest)?;
            tokens.push(Token::Num(num));
            rest = &rest[len..];
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            tokens.push(Token::Name(rest[..len].to_string()));
            rest = &rest[len..];
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            if *sym == "=" {
                return Err("`=` is no operator here (comparison is `==`)".into());
            }
            tokens.push(Token::Sym(sym));
            rest = &rest[sym.len()..];
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
}

fn lex_number(text: &str) -> Result<(Num, usize), String> {
    let mut len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    // An exponent: `1e3`, `2.5E-2`.
    let after = &text[len..];
    if after.starts_with(['e', 'E']) {
        let exp = after[1..].strip_prefix(['+', '-']).unwrap_or(&after[1..]);
        let digits = exp.find(|c: char| !c.is_ascii_digit()).unwrap_or(exp.len());
        if digits > 0 {
            len += after.len() - exp.len() + digits;
        }
    }
    let word = text[..len].replace('_', "");
    let num = if word.contains(['.', 'e', 'E']) {
        word.parse::<f64>().map(Num::Float).ok()
    } else {
        word.parse::<i64>().map(Num::Int).ok()
    };
    num.map(|n| (n, len))
        .ok_or_else(|| format!("invalid number `{}`", &text[..len]))
}

// ---------------------------------------------------------------------------------------
// Parser (precedence climbing, Python's precedence)

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    vars: bool,
}

type Parsed = Result<Expr, String>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), String> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected `{sym}`, found `{t}`"),
                None => format!("expected `{sym}` at the end"),
            })
        }
    }

    fn ternary(&mut self) -> Parsed {
        let then = self.or()?;
        if !self.eat_word("if") {
            return Ok(then);
        }
        let cond = self.or()?;
        if !self.eat_word("else") {
            return Err("`if` without `else`".into());
        }
        let otherwise = self.ternary()?;
        Ok(Expr::IfElse {
            then: Box::new(then),
            cond: Box::new(cond),
            otherwise: Box::new(otherwise),
        })
    }

    fn or(&mut self) -> Parsed {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Parsed {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Parsed {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed {
        let first = self.binary(0)?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Token::Sym("<")) => Op::Lt,
                Some(Token::Sym("<=")) => Op::Le,
                Some(Token::Sym(">")) => Op::Gt,
                Some(Token::Sym(">=")) => Op::Ge,
                Some(Token::Sym("==")) => Op::Eq,
                Some(Token::Sym("!=")) => Op::Ne,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.binary(0)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Compare(Box::new(first), rest)
        })
    }

    /// Binary operators from `|` (level 0) to `* / // %` (level 5), left-associative.
    fn binary(&mut self, level: usize) -> Parsed {
        const LEVELS: [&[(&str, Op)]; 6] = [
            &[("|", Op::BitOr)],
            &[("^", Op::BitXor)],
            &[("&", Op::BitAnd)],
            &[("<<", Op::Shl), (">>", Op::Shr)],
            &[("+", Op::Add), ("-", Op::Sub)],
            &[
                ("*", Op::Mul),
                ("/", Op::Div),
                ("//", Op::FloorDiv),
                ("%", Op::Mod),
            ],
        ];
        let next = |p: &mut Self| {
            if level + 1 < LEVELS.len() {
                p.binary(level + 1)
            } else {
                p.unary()
            }
        };
        let mut left = next(self)?;
        'outer: loop {
            for (sym, op) in LEVELS[level] {
                if self.eat_sym(sym) {
                    left = Expr::Binary(*op, Box::new(left), Box::new(next(self)?));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn unary(&mut self) -> Parsed {
        if self.eat_sym("-") {
            Ok(Expr::Neg(Box::new(self.unary()?)))
        } else if self.eat_sym("+") {
            self.unary()
        } else if self.eat_sym("~") {
            Ok(Expr::Invert(Box::new(self.unary()?)))
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Parsed {
        let base = self.atom()?;
        if self.eat_sym("**") {
            // Right-associative, and binds tighter than a unary minus on its left only.
            let exponent = self.unary()?;
            return Ok(Expr::Binary(Op::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Parsed {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Token::Sym("(")) => {
                self.pos += 1;
                let inner = self.ternary()?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Some(Token::Name(_)) => self.name(),
            Some(t) => Err(format!("unexpected `{t}`")),
            None => Err("the expression ends too early".into()),
        }
    }

    /// A dotted name: a variable, a constant or a function call.
    fn name(&mut self) -> Parsed {
        let mut dotted = String::new();
        while let Some(Token::Name(n)) = self.peek().cloned() {
            self.pos += 1;
            dotted.push_str(&n);
            if !self.eat_sym(".") {
                break;
            }
            dotted.push('.');
        }
        if self.eat_sym("(") {
            let func = function(&dotted).ok_or_else(|| format!("unknown function `{dotted}`"))?;
            let mut args = Vec::new();
            if !self.eat_sym(")") {
                loop {
                    args.push(self.ternary()?);
                    if self.eat_sym(")") {
                        break;
                    }
                    self.expect_sym(",")?;
                }
            }
            check_arity(func, &dotted, args.len())?;
            return Ok(Expr::Call(func, args));
        }
        let var = match dotted.as_str() {
            "True" => return Ok(Expr::Num(Num::Int(1))),
            "False" => return Ok(Expr::Num(Num::Int(0))),
            "math.e" => return Ok(Expr::Num(Num::Float(std::f64::consts::E))),
            "math.pi" => return Ok(Expr::Num(Num::Float(std::f64::consts::PI))),
            "ban.Time" => Var::Time,
            "ban.Count" => Var::Count,
            "banFactor" => Var::Factor,
            _ => return Err(format!("unknown name `{dotted}`")),
        };
        if !self.vars {
            return Err(format!("`{dotted}` cannot be used here"));
        }
        Ok(Expr::Var(var))
    }
}

fn function(name: &str) -> Option<Func> {
    Some(match name {
        "min" => Func::Min,
        "max" => Func::Max,
        "abs" => Func::Abs,
        "int" => Func::Int,
        "float" => Func::Float,
        "round" => Func::Round,
        "pow" | "math.pow" => Func::Pow,
        "math.exp" => Func::Exp,
        "math.log" => Func::Log,
        "math.log2" => Func::Log2,
        "math.log10" => Func::Log10,
        "math.sqrt" => Func::Sqrt,
        "math.floor" => Func::Floor,
        "math.ceil" => Func::Ceil,
        _ => return None,
    })
}

fn check_arity(func: Func, name: &str, n: usize) -> Result<(), String> {
    let ok = match func {
        Func::Min | Func::Max => n >= 1,
        Func::Pow => n == 2,
        Func::Log | Func::Round => n == 1 || n == 2,
        _ => n == 1,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` does not take {n} argument(s)"))
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn eval(expr: &Expr, vars: &Vars) -> Result<Num, String> {
    Ok(match expr {
        Expr::Num(n) => *n,
        Expr::Var(Var::Time) => vars.time,
        Expr::Var(Var::Count) => Num::Int(vars.count),
        Expr::Var(Var::Factor) => vars.factor,
        Expr::Neg(e) => match eval(e, vars)? {
            n @ Num::Int(i) => i.checked_neg().map_or(Num::Float(-n.as_f64()), Num::Int),
            Num::Float(f) => Num::Float(-f),
        },
        Expr::Invert(e) => Num::Int(!int_operand(eval(e, vars)?, "`~`")?),
        Expr::Not(e) => Num::Int(i64::from(!eval(e, vars)?.truthy())),
        Expr::Binary(op, a, b) => binary(*op, eval(a, vars)?, eval(b, vars)?)?,
        Expr::Compare(first, rest) => {
            let mut left = eval(first, vars)?;
            for (op, e) in rest {
                let right = eval(e, vars)?;
                if !binary(*op, left, right)?.truthy() {
                    return Ok(Num::Int(0));
                }
                left = right;
            }
            Num::Int(1)
        }
        Expr::And(a, b) => {
            let a = eval(a, vars)?;
            if a.truthy() { eval(b, vars)? } else { a }
        }
        Expr::Or(a, b) => {
            let a = eval(a, vars)?;
            if a.truthy() { a } else { eval(b, vars)? }
        }
        Expr::IfElse {
            then,
            cond,
            otherwise,
        } => {
            if eval(cond, vars)?.truthy() {
                eval(then, vars)?
            } else {
                eval(otherwise, vars)?
            }
        }
        Expr::Call(func, args) => {
            let args = args
                .iter()
                .map(|a| eval(a, vars))
                .collect::<Result<Vec<_>, _>>()?;
            call(*func, &args)?
        }
    })
}

fn int_operand(n: Num, what: &str) -> Result<i64, String> {
    match n {
        Num::Int(i) => Ok(i),
        Num::Float(_) => Err(format!("{what} needs whole numbers")),
    }
}

fn float(f: f64) -> Result<Num, String> {
    if f.is_finite() {
        Ok(Num::Float(f))
    } else {
        Err("the result is not a finite number".into())
    }
}

fn binary(op: Op, a: Num, b: Num) -> Result<Num, String> {
    use Num::Int;
    let cmp = |r: bool| Ok(Int(i64::from(r)));
    match op {
        Op::Lt => return cmp(a.as_f64() < b.as_f64()),
        Op::Le => return cmp(a.as_f64() <= b.as_f64()),
        Op::Gt => return cmp(a.as_f64() > b.as_f64()),
        Op::Ge => return cmp(a.as_f64() >= b.as_f64()),
        Op::Eq => return cmp((a.as_f64() - b.as_f64()).abs() < f64::EPSILON),
        Op::Ne => return cmp((a.as_f64() - b.as_f64()).abs() >= f64::EPSILON),
        Op::Div => {
            if b.as_f64() == 0.0 {
                return Err("division by zero".into());
            }
            return float(a.as_f64() / b.as_f64());
        }
        Op::Shl | Op::Shr | Op::BitAnd | Op::BitOr | Op::BitXor => {
            const WHAT: &str = "a bitwise operator (`<<`, `>>`, `&`, `|`, `^`)";
            return bitwise(op, int_operand(a, WHAT)?, int_operand(b, WHAT)?);
        }
        _ => {}
    }
    if let (Int(x), Int(y)) = (a, b) {
        let exact = match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::FloorDiv | Op::Mod if y == 0 => return Err("division by zero".into()),
            Op::FloorDiv => Some(x.div_euclid(y) - i64::from(y < 0 && x.rem_euclid(y) != 0)),
            Op::Mod => Some(x.rem_euclid(y) + if y < 0 && x.rem_euclid(y) != 0 { y } else { 0 }),
            Op::Pow if y >= 0 => u32::try_from(y).ok().and_then(|y| x.checked_pow(y)),
            _ => None,
        };
        if let Some(r) = exact {
            return Ok(Int(r));
        }
    }
    let (left, right) = (a.as_f64(), b.as_f64());
    float(match op {
        Op::Add => left + right,
        Op::Sub => left - right,
        Op::Mul => left * right,
        Op::FloorDiv | Op::Mod if right == 0.0 => return Err("division by zero".into()),
        Op::FloorDiv => (left / right).floor(),
        Op::Mod => left - right * (left / right).floor(),
        Op::Pow => left.powf(right),
        _ => unreachable!("handled above"),
    })
}

fn bitwise(op: Op, x: i64, y: i64) -> Result<Num, String> {
    Ok(Num::Int(match op {
        Op::Shl => {
            let shift = u32::try_from(y).map_err(|_| "negative shift count")?;
            x.checked_shl(shift)
                .filter(|r| r >> shift == x)
                .ok_or("the shift overflows")?
        }
        Op::Shr => {
            x >> u32::try_from(y)
                .map_err(|_| "negative shift count")?
                .min(63)
        }
        Op::BitAnd => x & y,
        Op::BitOr => x | y,
        _ => x ^ y,
    }))
}

fn call(func: Func, args: &[Num]) -> Result<Num, String> {
    let x = args[0].as_f64();
    Ok(match func {
        Func::Min | Func::Max => {
            let mut best = args[0];
            for a in &args[1..] {
                let better = if func == Func::Min {
                    a.as_f64() < best.as_f64()
                } else {
                    a.as_f64() > best.as_f64()
                };
                if better {
                    best = *a;
                }
            }
            best
        }
        Func::Abs => match args[0] {
            Num::Int(i) => Num::Int(i.checked_abs().ok_or("overflow")?),
            Num::Float(f) => Num::Float(f.abs()),
        },
        Func::Float => Num::Float(x),
        Func::Int => to_int(x.trunc())?,
        Func::Round if args.len() == 1 => to_int(round_half_even(x))?,
        Func::Round => {
            let scale = 10f64.powf(args[1].as_f64());
            float(round_half_even(x * scale) / scale)?
        }
        Func::Floor => to_int(x.floor())?,
        Func::Ceil => to_int(x.ceil())?,
        Func::Pow => binary(Op::Pow, args[0], args[1])?,
        Func::Exp => float(x.exp())?,
        Func::Sqrt if x < 0.0 => return Err("math domain error (sqrt)".into()),
        Func::Sqrt => float(x.sqrt())?,
        Func::Log | Func::Log2 | Func::Log10 if x <= 0.0 => {
            return Err("math domain error (log)".into());
        }
        Func::Log if args.len() == 2 => float(x.ln() / args[1].as_f64().ln())?,
        Func::Log => float(x.ln())?,
        Func::Log2 => float(x.log2())?,
        Func::Log10 => float(x.log10())?,
    })
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    let half = ((x - x.trunc()).abs() - 0.5).abs() < f64::EPSILON;
    if half && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

fn to_int(f: f64) -> Result<Num, String> {
    if f.is_finite() && f.abs() < 9.2e18 {
        #[expect(clippy::cast_possible_truncation, reason = "checked to be in range")]
        Ok(Num::Int(f as i64))
    } else {
        Err("the number is too large for a whole number".into())
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
