//! Downloads against a small HTTP server on 127.0.0.1: good files, corrupt ones,
//! truncated ones, dropped connections, and the cache reused without a request.

#![cfg(feature = "download")]
// The helpers below are shared by the tests; a failing call fails the test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Reply, Scratch, Server, gzip};
use kiln_data::cifar::{Cifar10, Member, RECORD_LEN};
use kiln_data::mnist::{FILES, IdxSet};
use kiln_data::{Cache, Checksum, Error, Remote, md5_hex};

const IMAGES: &[u8] = include_bytes!("../data/mnist10k/images-idx3-ubyte.gz");
const LABELS: &[u8] = include_bytes!("../data/mnist10k/labels-idx1-ubyte.gz");

/// MNIST served by `server`: the embedded digits stand in for both splits.
fn mnist_on(server: &Server) -> IdxSet {
    let bodies = [IMAGES, LABELS, IMAGES, LABELS];
    for (name, body) in FILES.iter().zip(bodies) {
        server.route(&format!("/{name}"), Reply::Body(body.to_vec()));
    }
    let md5: Vec<String> = bodies.iter().map(|b| md5_hex(b)).collect();
    let md5: [&str; 4] = [&md5[0], &md5[1], &md5[2], &md5[3]];
    IdxSet::new("mnist", &server.base, md5, Vec::new())
}

fn cache(dir: &Scratch) -> Cache {
    Cache::new(dir.path()).with_progress(false)
}

#[test]
fn files_are_downloaded_verified_and_then_reused_without_a_request() {
    let server = Server::start();
    let set = mnist_on(&server);
    let dir = Scratch::new("mnist-good");
    let (train, test) = set.load_cached(&cache(&dir)).unwrap();
    assert_eq!((train.len(), test.len()), (10_000, 10_000));
    assert_eq!(server.hits(), 4);
    let mut expected: Vec<String> = FILES.iter().map(|f| format!("mnist/{f}")).collect();
    expected.sort();
    assert_eq!(
        dir.files(),
        expected,
        "only the verified files, no temporary ones"
    );

    let (again, _) = set.load_cached(&cache(&dir)).unwrap();
    assert_eq!(server.hits(), 4, "the second call makes no request");
    assert_eq!(again, train);
}

/// Serves `reply` for the training images and checks that loading fails with a
/// download error that `check` accepts, and that nothing was cached.
fn fails_and_caches_nothing(name: &str, reply: Reply, check: impl Fn(&str)) {
    let server = Server::start();
    let set = mnist_on(&server);
    server.route(&format!("/{}", FILES[0]), reply);
    let dir = Scratch::new(name);
    let err = set.load_cached(&cache(&dir)).unwrap_err();
    assert!(matches!(err, Error::Download { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{}/{}", server.base, FILES[0])),
        "{msg}"
    );
    assert!(msg.contains("place it at"), "{msg}");
    check(&msg);
    assert!(dir.files().is_empty(), "nothing cached: {:?}", dir.files());

    // Once the server is fixed, the same cache fills.
    server.route(&format!("/{}", FILES[0]), Reply::Body(IMAGES.to_vec()));
    assert!(set.load_cached(&cache(&dir)).is_ok());
}

#[test]
fn a_corrupt_file_is_an_error_and_not_cached() {
    let mut corrupt = IMAGES.to_vec();
    corrupt[1000] ^= 0x55;
    fails_and_caches_nothing("mnist-corrupt", Reply::Body(corrupt), |msg| {
        assert!(
            msg.contains("checksum mismatch") && msg.contains("nothing was cached"),
            "{msg}"
        );
    });
}

#[test]
fn a_truncated_file_is_an_error_and_not_cached() {
    let reply = Reply::Short {
        body: IMAGES[..IMAGES.len() / 3].to_vec(),
        announced: IMAGES.len(),
    };
    fails_and_caches_nothing("mnist-short", reply, |_| {});
}

#[test]
fn a_dropped_connection_is_an_error_and_not_cached() {
    fails_and_caches_nothing("mnist-hangup", Reply::Hangup, |_| {});
}

#[test]
fn a_missing_file_is_an_error_and_not_cached() {
    fails_and_caches_nothing("mnist-404", Reply::Status(404), |msg| {
        assert!(msg.contains("404"), "{msg}")
    });
}

#[test]
fn offline_errors_say_how_to_place_the_files_by_hand() {
    // A port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let set = IdxSet::new(
        "mnist",
        &format!("http://127.0.0.1:{port}/m"),
        [""; 4],
        Vec::new(),
    );
    let dir = Scratch::new("offline");
    let err = set.load_cached(&cache(&dir)).unwrap_err();
    let msg = err.to_string();
    let dest = dir.path().join("mnist").join(FILES[0]);
    assert!(
        msg.contains(&format!("download http://127.0.0.1:{port}/m/{}", FILES[0])),
        "{msg}"
    );
    assert!(
        msg.contains(&dest.display().to_string()) && msg.contains("KILN_DATA_DIR"),
        "{msg}"
    );
    assert!(dir.files().is_empty());
}

#[test]
fn a_hand_placed_file_is_verified_and_never_fetched_again() {
    let server = Server::start();
    let set = mnist_on(&server);
    let dir = Scratch::new("by-hand");
    std::fs::create_dir_all(dir.path().join("mnist")).unwrap();
    for (name, body) in FILES.iter().zip([IMAGES, LABELS, IMAGES, LABELS]) {
        std::fs::write(dir.path().join("mnist").join(name), body).unwrap();
    }
    assert!(set.load_cached(&cache(&dir)).is_ok());
    assert_eq!(server.hits(), 0);
    std::fs::write(dir.path().join("mnist").join(FILES[1]), b"not labels").unwrap();
    let err = set.load_cached(&cache(&dir)).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert_eq!(server.hits(), 0);
}

/// A CIFAR-10 file of `n` records whose labels count from `first`.
fn cifar_records(n: usize, first: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * RECORD_LEN);
    for i in 0..n {
        out.push(((first + i) % 10) as u8);
        out.extend((0..RECORD_LEN - 1).map(|p| ((p + i) % 256) as u8));
    }
    out
}

/// A tar.gz in the layout of the official archive, and the spec that describes it.
fn cifar_archive(base: &str, corrupt_member: bool) -> (Vec<u8>, Cifar10) {
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    let mut tar = tar::Builder::new(Vec::new());
    let mut members = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let body = cifar_records(3, i * 3);
        members.push(Member {
            name: name.to_string(),
            checksum: Some(Checksum::Md5(md5_hex(&body))),
        });
        let mut stored = body.clone();
        if corrupt_member && i == 2 {
            stored[10] ^= 1;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(stored.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            &stored[..],
        )
        .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_cksum();
    tar.append_data(
        &mut header,
        "cifar-10-batches-bin/readme.html",
        &b"hello"[..],
    )
    .unwrap();
    let archive = gzip(&tar.into_inner().unwrap());
    let test = members.pop().unwrap();
    let spec = Cifar10 {
        archive: Remote::new(
            base,
            "cifar-10-binary.tar.gz",
            Checksum::Md5(md5_hex(&archive)),
        ),
        train: members,
        test,
    };
    (archive, spec)
}

#[test]
fn cifar_archive_is_downloaded_extracted_and_reused() {
    let server = Server::start();
    let (archive, spec) = cifar_archive(&server.base, false);
    server.route("/cifar-10-binary.tar.gz", Reply::Body(archive));
    let dir = Scratch::new("cifar-good");
    let (train, test) = spec.load_cached(&cache(&dir)).unwrap();
    assert_eq!((train.len(), test.len()), (15, 3));
    assert_eq!(train.labels().unwrap()[..4], [0, 1, 2, 3]);
    assert_eq!(test.labels().unwrap(), &[5, 6, 7]);
    // Record 0 holds byte p % 256 at image offset p: pixel 1 is (1, 1025 % 256, 2049 % 256).
    assert_eq!(&train.bytes().unwrap()[3..6], &[1, 1, 1]);
    assert_eq!(server.hits(), 1);
    let files = dir.files();
    assert!(
        files.contains(&"cifar-10/cifar-10-batches-bin/test_batch.bin".to_string()),
        "{files:?}"
    );
    assert_eq!(files.len(), 7, "{files:?}");

    let again = spec.load_cached(&cache(&dir)).unwrap();
    assert_eq!(again.0, train);
    assert_eq!(server.hits(), 1, "the extracted files are reused");

    std::fs::remove_file(
        dir.path()
            .join("cifar-10/cifar-10-batches-bin/data_batch_2.bin"),
    )
    .unwrap();
    assert_eq!(spec.load_cached(&cache(&dir)).unwrap().1, test);
    assert_eq!(server.hits(), 1, "the cached archive is extracted again");
    assert_eq!(dir.files().len(), 7, "the incomplete folder was replaced");
}

#[test]
fn cifar_member_with_a_bad_checksum_is_not_extracted() {
    let server = Server::start();
    let (archive, spec) = cifar_archive(&server.base, true);
    server.route("/cifar-10-binary.tar.gz", Reply::Body(archive));
    let dir = Scratch::new("cifar-bad-member");
    let err = spec.load_cached(&cache(&dir)).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
    assert!(!dir.path().join("cifar-10/cifar-10-batches-bin").exists());
}

#[test]
fn cifar_archive_with_a_bad_checksum_is_not_cached() {
    let server = Server::start();
    let (mut archive, spec) = cifar_archive(&server.base, false);
    let n = archive.len();
    archive[n / 2] ^= 0xff;
    server.route("/cifar-10-binary.tar.gz", Reply::Body(archive));
    let dir = Scratch::new("cifar-bad-archive");
    let err = spec.load_cached(&cache(&dir)).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(dir.files().is_empty(), "{:?}", dir.files());
}
