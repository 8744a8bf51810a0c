//! Unit tests of `seccomp.rs` (kept apart so that file reads as the code).

use super::*;

#[test]
fn baseline_parses_and_compiles() {
    let p = SeccompPolicy::baseline();
    assert!(p.rules.len() > 100, "baseline has {} rules", p.rules.len());
    assert!(p.rules.iter().all(|r| !r.why.trim().is_empty()), "every rule needs a reason");
    let prog = p.compile().expect("baseline compiles");
    // The kernel refuses programs longer than BPF_MAXINSNS (4096).
    assert!(prog.len() <= 4096, "program of {} instructions", prog.len());
}

/// What the kernel would answer with several filters installed: the
/// most restrictive action (kill > errno > allow).
fn stacked(progs: &[BpfProgram], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let rank = |r: u32| match r & 0xffff_0000 {
        bpf::RET_KILL_PROCESS => 0,
        bpf::RET_ERRNO => 1,
        _ => 2,
    };
    progs.iter().map(|p| bpf::run(p, nr, arch, args)).min_by_key(|r| rank(*r)).unwrap_or(bpf::RET_ALLOW)
}

/// Argument values around every constant the rules compare with.
fn probe_values(p: &SeccompPolicy) -> Vec<u64> {
    let mut v = vec![0, 1, u32::MAX as u64, 1 << 32, u64::MAX, 0xffff_ffff_0000_0000];
    for r in p.rules.iter().flat_map(|r| &r.args).chain(p.errno.iter().flat_map(|r| &r.args)) {
        let c = r.to_cond().expect("valid");
        for x in [c.value, c.value.wrapping_add(1), c.value.wrapping_sub(1), c.value | (1 << 32), c.value | 0xdead_0000_0000] {
            v.push(x);
        }
        if c.op == CmpOp::MaskedEq {
            v.extend([c.mask, !c.mask, c.value | !c.mask]);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

fn assert_same_as_seccompiler(p: &SeccompPolicy) {
    let ours = p.compile().expect("compiles");
    let reference = p.compile_with_seccompiler().expect("seccompiler compiles");
    let values = probe_values(p);
    let mut checked = 0u64;
    for arch in [bpf::AUDIT_ARCH_X86_64, 0x4000_0003 /* i386 */] {
        for nr in (0..480).chain([0x4000_0000, 0x4000_0001, 0x4000_0000 + 59, u32::MAX]) {
            for index in 0..6 {
                for &x in &values {
                    let mut args = [0u64; 6];
                    args[index] = x;
                    let got = bpf::run(&ours, nr, arch, args);
                    let want = stacked(&reference, nr, arch, args);
                    assert_eq!(got, want, "nr {nr} arch {arch:#x} arg{index}={x:#x}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000, "only {checked} cases checked");
}

#[test]
fn generated_program_answers_like_seccompiler() {
    assert_same_as_seccompiler(&SeccompPolicy::baseline());
}

#[test]
fn baseline_program_is_short() {
    let ours = SeccompPolicy::baseline().compile().expect("compiles");
    let linear: usize = SeccompPolicy::baseline().compile_with_seccompiler().expect("compiles").iter().map(Vec::len).sum();
    assert!(ours.len() * 3 < linear, "{} instructions vs seccompiler's {linear}", ours.len());
}

#[test]
fn far_jumps_go_through_trampolines() {
    // Every syscall gets argument checks too: chains far longer than a
    // conditional jump can span.
    let mut p = SeccompPolicy::baseline();
    let extra: Vec<SyscallRule> = SYSCALLS
        .iter()
        .map(|(name, _)| SyscallRule {
            syscall: name.trim_start_matches("SYS_").into(),
            why: "test".into(),
            args: vec![
                ArgCondition { index: 1, width: 64, op: CmpOp::Gt, value: Value::Number(0x7_0000_0000), mask: None },
                ArgCondition { index: 2, width: 64, op: CmpOp::Ne, value: Value::Number(0x1_0000_0001), mask: None },
            ],
        })
        .collect();
    p.rules.retain(|r| !r.args.is_empty() || p.errno.iter().any(|e| e.syscall == r.syscall));
    p.rules.extend(extra);
    let prog = p.compile().expect("compiles");
    assert!(prog.len() > 1000, "{} instructions: not long enough to need far jumps", prog.len());
    assert!(prog.iter().any(|f| f.code == 0x05), "no ja in a long program");
    assert_same_as_seccompiler(&p);
}

#[test]
fn every_comparison_op_at_both_widths_answers_like_seccompiler() {
    let mut p = SeccompPolicy::baseline();
    let ops = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge, CmpOp::MaskedEq];
    // One syscall per (op, width): alternatives of one syscall are ORed
    // and would mask each other's mistakes.
    let names = [
        "getpriority", "sched_getparam", "getitimer", "alarm", "msync", "mincore", "flock", "fsync",
        "fdatasync", "umask", "getpgid", "getsid", "sched_getscheduler", "timer_delete", "setitimer",
    ];
    p.rules.retain(|r| !names.contains(&r.syscall.as_str()));
    let cases = ops.into_iter().flat_map(|op| [(op, 32u8, 0x8000_0001u64, 0x00ff_00ffu64), (op, 64, 0x1_0000_0005, 0xf_0000_00ff)]);
    for ((op, width, value, mask), name) in cases.zip(names) {
        p.rules.push(SyscallRule {
            syscall: name.into(),
            why: "test".into(),
            args: vec![ArgCondition {
                index: width / 32,
                width,
                op,
                value: Value::Number(value & if op == CmpOp::MaskedEq { mask } else { u64::MAX }),
                mask: (op == CmpOp::MaskedEq).then_some(Value::Number(mask)),
            }],
        });
    }
    // Two conditions in one rule are ANDed.
    p.rules.push(SyscallRule {
        syscall: "setitimer".into(),
        why: "test".into(),
        args: vec![
            ArgCondition { index: 0, width: 64, op: CmpOp::Ge, value: Value::Number(3), mask: None },
            ArgCondition { index: 0, width: 64, op: CmpOp::Le, value: Value::Number(u32::MAX as u64 + 7), mask: None },
        ],
    });
    assert_same_as_seccompiler(&p);
}

#[test]
fn dangerous_syscalls_are_absent_from_baseline() {
    let p = SeccompPolicy::baseline();
    for bad in ["execve", "mount", "ptrace", "bpf", "memfd_create", "unshare", "setns", "bind", "listen"] {
        assert!(!p.rules.iter().any(|r| r.syscall == bad), "{bad} must not be allowed");
    }
}

#[test]
fn errno_rule_without_allow_is_rejected() {
    let mut p = SeccompPolicy::baseline();
    p.rules.retain(|r| r.syscall != "clone3");
    let err = p.validate().unwrap_err();
    assert!(err.contains("clone3"), "{err}");
}

#[test]
fn unknown_names_are_explained() {
    let mut p = SeccompPolicy::baseline();
    p.rules.push(SyscallRule { syscall: "opne".into(), why: "typo".into(), args: vec![] });
    assert!(p.validate().unwrap_err().contains("unknown syscall \"opne\""));
}
