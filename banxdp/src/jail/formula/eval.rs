//! The formula tree computed with Python's semantics: int and float with promotion, true
//! division, floor division and modulo with the divisor's sign, integers that overflow
//! continuing as floats.

use super::{
    Num, Vars,
    parse::{Expr, Func, Op, Var},
};

pub(super) fn eval(expr: &Expr, vars: &Vars) -> Result<Num, String> {
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
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => {
            let order = compare(a, b);
            return cmp(match op {
                Op::Lt => order.is_lt(),
                Op::Le => order.is_le(),
                Op::Gt => order.is_gt(),
                Op::Ge => order.is_ge(),
                Op::Eq => order.is_eq(),
                _ => order.is_ne(),
            });
        }
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

/// Python's comparison: exact between whole numbers, and between floats (a NaN cannot
/// arise: every float result is checked to be finite).
fn compare(a: Num, b: Num) -> std::cmp::Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
    }
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
