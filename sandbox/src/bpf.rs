//! Classic-BPF code generation for seccomp: one short program that finds a
//! syscall's answer by binary search.
//!
//! Why not seccompiler's own output: it emits one linear `jeq` chain per
//! filter and one filter per action. Install cost grows with the length of
//! every installed filter (the classic→eBPF conversion and JIT are linear, and
//! the kernel's action cache runs each filter for every syscall number), and
//! a ~780 instruction allowlist plus two errno filters cost ~0.3 ms per launch
//! here. This generator emits a single filter:
//!
//! ```text
//!   ld arch; jeq X86_64 ? dispatch : kill          (i386 `int 0x80`)
//!   dispatch: ld nr; binary search over intervals of syscall numbers with
//!             the same answer; every number above the highest rule (all x32
//!             numbers, nr | 0x40000000) falls in the last, default interval
//!   leaf: ret ALLOW | ret default | a chain for one number:
//!         errno alternatives → ret ERRNO(n); allow alternatives → ret ALLOW;
//!         ret default
//! ```
//!
//! The program is emitted back to front, so every jump target is already
//! placed when the jump is written; a target more than 255 instructions away
//! is reached through a `ja` (32-bit offset). seccompiler stays the
//! reference: the unit tests run both programs in a BPF interpreter over
//! every syscall number and the rules' edge values and require identical
//! answers.

use std::collections::HashMap;

use seccompiler::sock_filter;

use crate::seccomp::CmpOp;

const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(index: u8) -> u32 {
    16 + 8 * index as u32
}
fn off_arg_hi(index: u8) -> u32 {
    off_arg_lo(index) + 4
}

/// One comparison on one argument, already resolved to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cond {
    pub index: u8,
    /// Compare all 64 bits, or only the low 32 (e.g. `int` arguments whose
    /// upper half the kernel ignores).
    pub wide: bool,
    pub op: CmpOp,
    pub value: u64,
    /// The mask of [`CmpOp::MaskedEq`] (all ones for the other operators).
    pub mask: u64,
}

/// What one syscall number does: ordered (action, alternatives) groups. An
/// alternative matches when all its conditions hold (an empty one always).
#[derive(Debug, Clone, Default)]
pub(crate) struct SyscallPlan {
    pub groups: Vec<(u32, Vec<Vec<Cond>>)>,
}

impl SyscallPlan {
    /// The answer when it does not depend on the arguments.
    fn constant(&self) -> Option<u32> {
        match self.groups.first() {
            Some((action, alts)) if alts.iter().any(Vec::is_empty) => Some(*action),
            _ => None,
        }
    }
}

/// A run of syscall numbers `start..` (up to the next interval's start).
enum Leaf<'a> {
    Ret(u32),
    Chain(&'a SyscallPlan),
}

/// Position of an instruction counted from the end of the program, so it
/// never changes while more code is put in front.
type Label = usize;

/// Longest forward distance a conditional jump can encode.
const MAX_COND_JUMP: usize = 255;

struct Emitter {
    /// The program in reverse order.
    rev: Vec<sock_filter>,
    /// A `ret` for each action, reused while conditional jumps can reach it.
    rets: HashMap<u32, Label>,
}

impl Emitter {
    /// Label of the next instruction to be placed (in front of the rest).
    fn here(&self) -> Label {
        self.rev.len()
    }
    fn put(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        self.rev.push(sock_filter { code, jt, jf, k });
        self.rev.len() - 1
    }
    /// Offset from the instruction about to be placed to `target`.
    fn distance(&self, target: Label) -> usize {
        self.here() - target - 1
    }
    fn ld(&mut self, off: u32) -> Label {
        self.put(BPF_LD | BPF_W | BPF_ABS, 0, 0, off)
    }
    fn ret(&mut self, action: u32) -> Label {
        match self.rets.get(&action) {
            Some(&l) if self.distance(l) <= MAX_COND_JUMP - 2 => l,
            _ => {
                let l = self.put(BPF_RET | BPF_K, 0, 0, action);
                self.rets.insert(action, l);
                l
            }
        }
    }
    fn ja(&mut self, target: Label) -> Label {
        let k = self.distance(target) as u32;
        self.put(BPF_JMP | BPF_JA, 0, 0, k)
    }
    /// `if A <op> k goto t else goto f`, via `ja` trampolines when too far.
    fn jump(&mut self, op: u16, k: u32, mut t: Label, mut f: Label) -> Label {
        if self.distance(t) > MAX_COND_JUMP - 1 {
            t = self.ja(t);
        }
        if self.distance(f) > MAX_COND_JUMP {
            f = self.ja(f);
        }
        let (jt, jf) = (self.distance(t) as u8, self.distance(f) as u8);
        self.put(BPF_JMP | op | BPF_K, jt, jf, k)
    }
    fn and(&mut self, k: u32) -> Label {
        self.put(BPF_ALU | BPF_AND | BPF_K, 0, 0, k)
    }

    fn finish(self) -> Result<Vec<sock_filter>, String> {
        if self.rev.len() > 4096 {
            return Err(format!("seccomp program has {} instructions; the kernel's limit is 4096", self.rev.len()));
        }
        Ok(self.rev.into_iter().rev().collect())
    }
}

/// Build the program. `plans` maps syscall numbers to what they do; every
/// other number, any other architecture and every x32 number get `default`.
pub(crate) fn generate(plans: &[(u32, SyscallPlan)], default: u32) -> Result<Vec<sock_filter>, String> {
    let mut sorted: Vec<&(u32, SyscallPlan)> = plans.iter().collect();
    sorted.sort_by_key(|(nr, _)| *nr);
    sorted.dedup_by_key(|(nr, _)| *nr);
    // Partition 0..=u32::MAX into intervals; neighbours with the same
    // constant answer merge.
    let mut intervals: Vec<(u32, Leaf)> = Vec::new();
    let mut next = 0u32;
    for (nr, plan) in &sorted {
        if *nr > next {
            add_interval(&mut intervals, next, Leaf::Ret(default));
        }
        let leaf = match plan.constant() {
            Some(action) => Leaf::Ret(action),
            None => Leaf::Chain(plan),
        };
        add_interval(&mut intervals, *nr, leaf);
        next = nr.saturating_add(1);
    }
    if next != 0 && sorted.last().is_some_and(|(nr, _)| *nr != u32::MAX) {
        add_interval(&mut intervals, next, Leaf::Ret(default));
    }
    if intervals.is_empty() {
        intervals.push((0, Leaf::Ret(default)));
    }
    let mut e = Emitter { rev: Vec::new(), rets: HashMap::new() };
    let dispatch = search(&mut e, &intervals, default);
    if dispatch + 1 != e.here() {
        e.ja(dispatch);
    }
    let nr_loaded = e.ld(OFF_NR);
    let kill = e.ret(default);
    e.jump(BPF_JEQ, AUDIT_ARCH_X86_64, nr_loaded, kill);
    e.ld(OFF_ARCH);
    e.finish()
}

fn add_interval<'a>(intervals: &mut Vec<(u32, Leaf<'a>)>, start: u32, leaf: Leaf<'a>) {
    if let (Some((_, Leaf::Ret(prev))), Leaf::Ret(new)) = (intervals.last(), &leaf) {
        if prev == new {
            return;
        }
    }
    intervals.push((start, leaf));
}

/// Code that answers for A (= nr) within `intervals`; returns its entry.
fn search(e: &mut Emitter, intervals: &[(u32, Leaf)], default: u32) -> Label {
    if let [(_, leaf)] = intervals {
        return match leaf {
            Leaf::Ret(action) => e.ret(*action),
            Leaf::Chain(plan) => chain(e, plan, default),
        };
    }
    let mid = intervals.len() / 2;
    let upper = search(e, &intervals[mid..], default);
    let lower = search(e, &intervals[..mid], default);
    e.jump(BPF_JGE, intervals[mid].0, upper, lower)
}

/// The argument checks for one syscall; returns the entry.
fn chain(e: &mut Emitter, plan: &SyscallPlan, default: u32) -> Label {
    let mut next = e.ret(default);
    for (action, alternatives) in plan.groups.iter().rev() {
        for conds in alternatives.iter().rev() {
            let mut ok = e.ret(*action);
            for c in conds.iter().rev() {
                ok = condition(e, c, ok, next);
            }
            next = ok;
        }
    }
    next
}

/// Code that goes to `ok` when `c` holds, else to `fail`; returns its entry.
/// Clobbers A.
fn condition(e: &mut Emitter, c: &Cond, ok: Label, fail: Label) -> Label {
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    // Emitted back to front: the low word's test first, then the high word's.
    match c.op {
        CmpOp::Eq | CmpOp::MaskedEq => {
            let mask = (c.op == CmpOp::MaskedEq).then_some(c.mask);
            e.jump(BPF_JEQ, vlo, ok, fail);
            if let Some(m) = mask {
                e.and(m as u32);
            }
            let entry = e.ld(off_arg_lo(c.index));
            if !c.wide {
                return entry;
            }
            e.jump(BPF_JEQ, vhi, entry, fail);
            if let Some(m) = mask {
                e.and((m >> 32) as u32);
            }
            e.ld(off_arg_hi(c.index))
        }
        CmpOp::Ne => {
            e.jump(BPF_JEQ, vlo, fail, ok);
            let entry = e.ld(off_arg_lo(c.index));
            if !c.wide {
                return entry;
            }
            e.jump(BPF_JEQ, vhi, entry, ok);
            e.ld(off_arg_hi(c.index))
        }
        CmpOp::Gt | CmpOp::Ge | CmpOp::Lt | CmpOp::Le => {
            // Unsigned: the high words decide unless they are equal.
            let (greater, strict) = match c.op {
                CmpOp::Gt => (true, true),
                CmpOp::Ge => (true, false),
                CmpOp::Lt => (false, true),
                _ => (false, false),
            };
            // lo > v (JGT) or lo >= v (JGE); Lt = !(>=), Le = !(>).
            let lo_op = if greater == strict { BPF_JGT } else { BPF_JGE };
            if greater {
                e.jump(lo_op, vlo, ok, fail);
            } else {
                e.jump(lo_op, vlo, fail, ok);
            }
            let entry = e.ld(off_arg_lo(c.index));
            if !c.wide {
                return entry;
            }
            let (above, below) = if greater { (ok, fail) } else { (fail, ok) };
            let equal_or_below = e.jump(BPF_JEQ, vhi, entry, below);
            e.jump(BPF_JGT, vhi, above, equal_or_below);
            e.ld(off_arg_hi(c.index))
        }
    }
}

/// A classic-BPF interpreter for seccomp programs (tests compare generators
/// with it; it is not used at runtime).
#[cfg(test)]
pub(crate) fn run(prog: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    loop {
        let f = &prog[pc];
        let class = f.code & 0x07;
        match class {
            0x00 => {
                let off = f.k as usize;
                acc = u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]);
                pc += 1;
            }
            0x04 => {
                assert_eq!(f.code & 0xf0, BPF_AND, "only AND is generated");
                acc &= f.k;
                pc += 1;
            }
            0x05 => {
                let op = f.code & 0xf0;
                if op == BPF_JA {
                    pc += 1 + f.k as usize;
                    continue;
                }
                let taken = match op {
                    BPF_JEQ => acc == f.k,
                    BPF_JGT => acc > f.k,
                    BPF_JGE => acc >= f.k,
                    0x40 => acc & f.k != 0,
                    _ => panic!("unexpected jump op {op:#x}"),
                };
                pc += 1 + if taken { f.jt as usize } else { f.jf as usize };
            }
            0x06 => return f.k,
            _ => panic!("unexpected BPF class {class:#x} at {pc}"),
        }
    }
}
