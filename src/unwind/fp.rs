//! The frame-pointer walk over a sample's stack copy.

use std::convert::Infallible;

use super::{Frames, Regs, Stack, UnwindEnd, Unwound};

/// The callers of a sample taken at a function's first instruction, by the
/// classic frame-pointer walk over the stack copy `stack` (`stack[0]` is
/// the byte at `regs.sp`): the first caller is at `[sp]` (the function has
/// not pushed rbp yet), then each frame's return address is at
/// `[rbp + 8]` and its caller's rbp at `[rbp]`.
///
/// The walk ends [`UnwindEnd::Complete`] at an rbp or return address of 0,
/// [`UnwindEnd::OutsideStack`] when rbp leaves the copy, and
/// [`UnwindEnd::BadRule`] (with the offending rbp) when rbp does not move up
/// the stack. Through code built without frame pointers it yields wrong
/// frames: compare with [`super::Unwinder::unwind`].
pub fn frame_pointer_chain(regs: &Regs, stack: &[u8], max_frames: usize) -> Unwound {
    let stack = Stack {
        base: regs.sp,
        bytes: stack,
    };
    let mut frames = Frames::new(max_frames);
    let Err(end) = walk(regs, &stack, &mut frames);
    frames.finish(end)
}

fn walk(regs: &Regs, stack: &Stack, frames: &mut Frames) -> Result<Infallible, UnwindEnd> {
    if regs.ip == 0 {
        return Err(UnwindEnd::Complete);
    }
    frames.push(regs.ip)?;
    let mut ret = stack.read(regs.sp)?;
    let mut floor = regs.sp;
    let mut bp = regs.bp;
    loop {
        if ret == 0 {
            return Err(UnwindEnd::Complete);
        }
        frames.push(ret)?;
        if bp == 0 {
            return Err(UnwindEnd::Complete);
        }
        if bp <= floor {
            return Err(UnwindEnd::BadRule(bp));
        }
        ret = stack.read(bp.checked_add(8).ok_or(UnwindEnd::OutsideStack(bp))?)?;
        (floor, bp) = (bp, stack.read(bp)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack copy at 0x1000 from little-endian words.
    fn words(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn walks_the_rbp_chain_to_a_zero_rbp() {
        // 0x1000: ret into caller 1; frame of caller 1 at 0x1010:
        // [0x1010] = 0x1020 (next rbp), [0x1018] = ret into caller 2;
        // [0x1020] = 0 (outermost), [0x1028] = ret into caller 3.
        let stack = words(&[0xa1, 0, 0x1020, 0xa2, 0, 0xa3]);
        let regs = Regs {
            ip: 0xa0,
            sp: 0x1000,
            bp: 0x1010,
        };
        assert_eq!(
            frame_pointer_chain(&regs, &stack, 16),
            Unwound {
                frames: vec![0xa0, 0xa1, 0xa2, 0xa3],
                end: UnwindEnd::Complete
            }
        );
        assert_eq!(
            frame_pointer_chain(&regs, &stack, 3),
            Unwound {
                frames: vec![0xa0, 0xa1, 0xa2],
                end: UnwindEnd::MaxFrames
            }
        );
    }

    #[test]
    fn stops_when_rbp_leaves_the_copy_or_does_not_climb() {
        let regs = Regs {
            ip: 0xa0,
            sp: 0x1000,
            bp: 0x9000,
        };
        assert_eq!(
            frame_pointer_chain(&regs, &words(&[0xa1]), 16),
            Unwound {
                frames: vec![0xa0, 0xa1],
                end: UnwindEnd::OutsideStack(0x9008)
            }
        );
        let regs = Regs {
            ip: 0xa0,
            sp: 0x1000,
            bp: 0x1008,
        };
        assert_eq!(
            frame_pointer_chain(&regs, &words(&[0xa1, 0x1008, 0xa2]), 16),
            Unwound {
                frames: vec![0xa0, 0xa1, 0xa2],
                end: UnwindEnd::BadRule(0x1008)
            }
        );
        assert_eq!(
            frame_pointer_chain(&regs, &[], 16),
            Unwound {
                frames: vec![0xa0],
                end: UnwindEnd::OutsideStack(0x1000)
            }
        );
    }
}
