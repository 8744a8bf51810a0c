//! Unit tests of `storage.rs`: trees, quota arithmetic, reopening, the
//! on-disk bound and prefix-scan budgets.

use super::*;
use crate::scratch::Scratch;
use hostd_protocol::BatchOp;

/// The default tree charge (`[daemon] storage_tree_charge_bytes`).
const TREE_CHARGE: u64 = 64 << 10;

fn tmp(name: &str) -> Scratch {
    Scratch::new(&format!("storage-{name}"))
}

const Q: u64 = TREE_CHARGE + 100;

#[test]
fn trees_quota_and_reopen() {
    let env = StorageEnv::new(8 << 20, 8 << 20);
    let dir = tmp("quota");
    {
        let s = env.open("m", &dir, StoreLimits::new(Q, 8)).expect("opens");
        s.put("default", b"", b"").expect("the default tree always exists");
        assert!(matches!(s.put("nope", b"k", b"v"), Err(StorageError::NoSuchTree(_))));
        assert!(matches!(s.open_tree("__meta"), Err(StorageError::BadTreeName(_))));
        s.open_tree("t").expect("tree");
        assert_eq!(s.quota(), (TREE_CHARGE, Q), "a tree is charged");
        s.put("t", b"a1", &[7; 40]).expect("fits");
        s.put("t", b"a2", &[7; 40]).expect("fits");
        assert_eq!(s.quota(), (TREE_CHARGE + 84, Q));
        let e = s.put("t", b"a3", &[7; 40]).unwrap_err();
        assert!(matches!(e, StorageError::QuotaExceeded { used, needed: 42, limit: Q } if used == TREE_CHARGE + 84), "{e}");
        // Overwriting with a smaller value and deleting are always allowed.
        s.put("t", b"a2", &[1; 10]).expect("shrinks");
        s.batch("t", &[BatchOp::Delete { key: b"a1".to_vec() }, BatchOp::Put { key: b"b".to_vec(), value: vec![2; 5] }])
            .expect("batch");
        assert_eq!(s.iter_prefix("t", b"a", 10, 1 << 20).expect("iter"), vec![(b"a2".to_vec(), vec![1; 10])]);
        assert_eq!(s.quota().0, TREE_CHARGE + 12 + 6);
    }
    let s = env.open("m", &dir, StoreLimits::new(8 * TREE_CHARGE, 8)).expect("reopens");
    assert_eq!(s.quota().0, TREE_CHARGE + 18, "usage is recomputed from the data");
    assert_eq!(s.get("t", b"b").expect("get"), Some(vec![2; 5]));
    assert_eq!(s.tree_count(), 2);
    for i in 0..6 {
        s.open_tree(&format!("x{i}")).expect("within the cap");
    }
    assert!(matches!(s.open_tree("one-too-many"), Err(StorageError::TooManyTrees { max: 8 })));
    s.open_tree("x0").expect("opening an existing tree is not a new one");
    s.drop_tree("t").expect("drop");
    s.open_tree("one-too-many").expect("room again after a drop");
    assert_eq!(s.quota().0, 7 * TREE_CHARGE, "trees are charged, the dropped tree's data is not");
    s.drop_tree("x0").expect("drop");
    let other = tmp("quota2");
    let e = env.open("m2", &other, StoreLimits::new(TREE_CHARGE / 2, 8)).expect("opens").open_tree("t").unwrap_err();
    assert!(matches!(e, StorageError::QuotaExceeded { needed: TREE_CHARGE, .. }), "a tree needs room in the quota: {e}");
}

/// Put-and-delete cycles keep the logical size under the quota while
/// the write-ahead log grows; growth is refused once the files pass
/// the quota and reclaim brings them back.
#[test]
fn data_files_on_disk_are_held_to_the_quota() {
    let env = StorageEnv::new(8 << 20, 8 << 20);
    let dir = tmp("disk");
    let quota = 1 << 20;
    let s = env.open("m", &dir, StoreLimits::new(quota, 8)).expect("opens");
    let (mut max_on_disk, mut refused_on_disk) = (0, 0);
    for round in 0..12u8 {
        for i in 0..40u8 {
            match s.put("default", &[round, i], &[i; 16 << 10]) {
                Ok(()) => {}
                Err(StorageError::OverQuotaOnDisk { .. }) => refused_on_disk += 1,
                Err(e) => panic!("{e}"),
            }
            max_on_disk = max_on_disk.max(s.on_disk());
        }
        for i in 0..40u8 {
            s.delete("default", &[round, i]).expect("deletes are always allowed");
        }
    }
    assert!(max_on_disk <= quota + (64 << 10), "data files stayed near the quota: {max_on_disk}");
    assert!(refused_on_disk > 0 || max_on_disk <= quota, "either refused or never over");
    std::thread::sleep(StoreLimits::new(0, 0).reclaim_every);
    s.put("default", b"after", &[1; 1000]).expect("room again after reclaim");
}

#[test]
fn a_prefix_scan_stops_at_its_byte_budget() {
    let env = StorageEnv::new(8 << 20, 8 << 20);
    let dir = tmp("scan");
    let s = env.open("m", &dir, StoreLimits::new(1 << 20, 8)).expect("opens");
    for i in 0..10u8 {
        s.put("default", &[b'k', i], &[i; 1000]).expect("put");
    }
    // Each entry is 2 + 1000 bytes plus 20 of framing.
    let got = s.iter_prefix("default", b"k", 100, 3 * 1022).expect("scan");
    assert_eq!(got.len(), 3, "stops at the budget, not at the count");
    assert_eq!(s.iter_prefix("default", b"k", 100, 1 << 20).expect("scan").len(), 10, "control: all fit");
    assert_eq!(s.iter_prefix("default", b"k", 100, 10).expect("scan").len(), 1, "one entry even past the budget");
}
