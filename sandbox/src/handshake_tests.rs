//! Unit tests of `handshake.rs` (kept apart so that file reads as the code).

use super::*;

#[test]
fn every_report_round_trips() {
    for step in Step::ALL {
        for detail in ["", "/data/some/path"] {
            let r = Report::Failed(Failure::with_detail(step, libc::EACCES, detail));
            assert_eq!(Report::decode(&r.encode()), Some(r));
        }
    }
    assert_eq!(Report::decode(&Report::Parked.encode()), Some(Report::Parked));
}

#[test]
fn steps_are_distinct_and_named() {
    let mut names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Step::ALL.len(), "two steps share a message");
    for (i, s) in Step::ALL.iter().enumerate() {
        assert_eq!(*s as u32, i as u32 + 1, "ALL must list every step in order");
    }
}

#[test]
fn long_details_are_cut_to_fit_one_atomic_write() {
    let r = Report::Failed(Failure::with_detail(Step::LandlockRulePath, libc::ENOENT, "x".repeat(4000)));
    let wire = r.encode();
    assert!(wire.len() <= REPORT_MAX);
    let Some(Report::Failed(f)) = Report::decode(&wire) else { panic!("decodes") };
    assert_eq!(f.detail.len(), REPORT_MAX - FAILED_HEADER);
}

#[test]
fn garbage_is_not_a_report() {
    for bytes in [&[][..], &[0], &[TAG_PARKED, 0], &[TAG_FAILED, 1, 0, 0], &[TAG_FAILED, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0]] {
        assert_eq!(Report::decode(bytes), None, "{bytes:?}");
    }
    // A detail length beyond the bytes present.
    let mut wire = Report::Failed(Failure::with_detail(Step::Exec, 2, "abc")).encode();
    wire.pop();
    assert_eq!(Report::decode(&wire), None);
}

#[test]
fn orders_round_trip_and_refuse_malformed_bytes() {
    let argv = vec![CString::new("/bin/m").unwrap(), CString::new("").unwrap(), CString::new("--x=1").unwrap()];
    for ipc in [false, true] {
        let o = Order { ipc, argv: argv.clone() };
        assert_eq!(Order::decode(&o.encode().unwrap()), Some(o.clone()));
        assert_eq!(o.fd_count(), if ipc { 5 } else { 4 });
    }
    let empty = Order { ipc: false, argv: vec![] };
    assert_eq!(Order::decode(&empty.encode().unwrap()), Some(empty));
    assert_eq!(Order::decode(&[]), None);
    assert_eq!(Order::decode(&[2, b'a', 0]), None, "flag is 0 or 1");
    assert_eq!(Order::decode(&[1, b'a']), None, "arguments are NUL-terminated");
    let huge = Order { ipc: false, argv: vec![CString::new(vec![b'a'; ORDER_MAX]).unwrap()] };
    assert_eq!(huge.encode().unwrap_err().raw_os_error(), Some(libc::E2BIG));
}

#[test]
fn go_messages_are_checked() {
    let (r, w) = crate::sys::pipe().unwrap();
    use std::os::fd::AsRawFd;
    release_child(w.as_raw_fd()).unwrap();
    assert_eq!(await_go(r.as_raw_fd(), Go::Release), Ok(()));
    release_child(w.as_raw_fd()).unwrap();
    assert_eq!(await_go(r.as_raw_fd(), Go::CgroupAttached), Err(libc::EPROTO));
    cgroup_attached(w.as_raw_fd()).unwrap();
    assert_eq!(await_go(r.as_raw_fd(), Go::CgroupAttached), Ok(()));
    drop(w);
    assert_eq!(await_go(r.as_raw_fd(), Go::Release), Err(libc::EPIPE));
}
