use alloc::vec::Vec;

use super::*;

fn take(
    store: &mut FileStore,
    dir: &str,
    name: &str,
    data: &[u8],
    over: bool,
    create: bool,
) -> Result<(), StoreError> {
    let r = store.reserve(
        dir.as_bytes(),
        name.as_bytes(),
        data.len() as u64,
        over,
        create,
    )?;
    store.publish(r, data.to_vec());
    Ok(())
}

#[test]
fn names_with_dot_dot_nul_or_slash_are_refused() {
    for (dir, name) in [
        ("/", ".."),
        ("/", "."),
        ("/", "a/b"),
        ("/", "a\0b"),
        ("/", ""),
        ("/a/../b", "x"),
        ("/a/./b", "x"),
        ("/a//b", "x"),
        ("relative", "x"),
        ("/a\0", "x"),
    ] {
        let mut store = FileStore::new(100);
        let e = store
            .reserve(dir.as_bytes(), name.as_bytes(), 1, true, true)
            .unwrap_err();
        assert!(matches!(e, StoreError::BadName(_)), "{dir:?} {name:?}: {e}");
        assert_eq!(e.status(), Status::BadName);
        assert_eq!(store.free(), 100, "nothing set aside");
    }
    let mut store = FileStore::new(100);
    assert!(
        store.reserve(b"/", &[0xff], 1, false, false).is_err(),
        "not UTF-8"
    );
    // `..` inside a longer name is a name like any other.
    take(&mut store, "/", "a..b", b"x", false, false).unwrap();
    take(&mut store, "/d/", "f", b"x", false, true).unwrap();
    assert_eq!(store.get("/d/f"), Some(&b"x"[..]));
}

#[test]
fn exists_and_overwrite() {
    let mut store = FileStore::new(100);
    take(&mut store, "/", "f", b"one", false, false).unwrap();
    assert_eq!(
        take(&mut store, "/", "f", b"two", false, false),
        Err(StoreError::Exists(String::from("/f")))
    );
    take(&mut store, "/", "f", b"three", true, false).unwrap();
    assert_eq!(store.get("/f"), Some(&b"three"[..]));
    assert_eq!(store.used(), 5);
}

#[test]
fn a_missing_directory_needs_create_path_and_creates_its_parents() {
    let mut store = FileStore::new(100);
    let e = take(&mut store, "/a/b", "f", b"x", false, false).unwrap_err();
    assert_eq!(e, StoreError::NoSuchPath(String::from("/a/b")));
    assert_eq!(e.status(), Status::NoSuchPath);
    take(&mut store, "/a/b", "f", b"x", false, true).unwrap();
    take(&mut store, "/a", "g", b"y", false, false).unwrap();
    take(&mut store, "/a/b/", "h", b"z", false, false).unwrap();
    let listed: Vec<_> = store.list().collect();
    assert_eq!(listed, [("/a/b/f", 1), ("/a/b/h", 1), ("/a/g", 1)]);
}

#[test]
fn the_cap_counts_files_and_the_staged_transfer() {
    let mut store = FileStore::new(10);
    let e = store.reserve(b"/", b"big", 11, false, false).unwrap_err();
    assert_eq!(e, StoreError::OutOfSpace { want: 11, free: 10 });
    assert_eq!(e.status(), Status::OutOfSpace);
    let r = store.reserve(b"/", b"a", 6, false, false).unwrap();
    assert_eq!(store.free(), 4);
    assert!(store.reserve(b"/", b"b", 5, false, false).is_err());
    store.release(r);
    assert_eq!(store.free(), 10);
    take(&mut store, "/", "a", &[1; 6], false, false).unwrap();
    // Replacing a file gives its bytes back.
    take(&mut store, "/", "a", &[2; 10], true, false).unwrap();
    assert_eq!((store.used(), store.free()), (10, 0));
    store.remove("/a").unwrap();
    assert_eq!(store.free(), 10);
    assert_eq!(
        store.remove("/a"),
        Err(StoreError::NotFound(String::from("/a")))
    );
}
