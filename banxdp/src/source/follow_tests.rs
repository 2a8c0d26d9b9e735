//! The follower against real files in temp dirs, with the real inotify watcher and the
//! polling backend, on tokio's runtime. Waits are for conditions, bounded by [`WAIT`].

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use super::*;

const WAIT: Duration = Duration::from_secs(30);

fn spec(pattern: &Path, polling: bool) -> FollowSpec {
    FollowSpec {
        pattern: pattern.to_str().unwrap().to_owned(),
        from_end: false,
        encoding: Encoding::Auto,
        polling,
    }
}

/// Polled files are read every 20 ms; the safety tick never comes, so inotify tests prove
/// that inotify alone wakes the follower.
fn fast() -> Intervals {
    Intervals {
        poll: Duration::from_millis(20),
        safety: Duration::from_secs(3600),
        grace: Duration::from_millis(200),
    }
}

fn follower(specs: Vec<FollowSpec>) -> Follower {
    Follower::with_intervals(specs, HashMap::new(), fast()).unwrap()
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The next `n` lines, with the batches they came in; panics after [`WAIT`].
async fn take(
    follower: &mut Follower,
    n: usize,
    seen: Option<&AtomicUsize>,
) -> (Vec<String>, Vec<Batch>) {
    let mut lines = Vec::new();
    let mut batches = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while lines.len() < n {
        let Ok(batch) = tokio::time::timeout_at(deadline, follower.next()).await else {
            panic!(
                "timed out with {} of {n} lines, the last {:?}",
                lines.len(),
                lines.last()
            );
        };
        lines.extend(batch.lines.iter().cloned());
        if let Some(seen) = seen {
            seen.store(lines.len(), Ordering::SeqCst);
        }
        batches.push(batch);
    }
    (lines, batches)
}

fn numbered(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i:06} from 192.0.2.{}", i % 250))
        .collect()
}

/// Waits (bounded) until the reader has seen more than `count` lines.
fn wait_seen(seen: &AtomicUsize, count: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while seen.load(Ordering::SeqCst) <= count {
        assert!(
            std::time::Instant::now() < deadline,
            "reader stuck before line {count}"
        );
        std::thread::yield_now();
    }
}

/// Writes `numbered(n)` to `path`, each line in two writes (so the reader meets partial
/// lines), rotating every `every` lines with `rotate`, which gets the open file and the index
/// of the next line.
fn writer(
    path: PathBuf,
    n: usize,
    every: usize,
    rotate: impl Fn(&Path, File, usize) -> File + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for (i, line) in numbered(n).into_iter().enumerate() {
            let (head, rest) = line.split_at(line.len() / 2);
            file.write_all(head.as_bytes()).unwrap();
            file.write_all(format!("{rest}\n").as_bytes()).unwrap();
            if (i + 1) % every == 0 && i + 1 < n {
                file = rotate(&path, file, i + 1);
            }
        }
    })
}

async fn rename_and_create_under_a_writer(polling: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let mut follower = follower(vec![spec(&path, polling)]);
    let seen = Arc::new(AtomicUsize::new(0));
    let (n, every) = (3000, 400);
    let seen_by_writer = Arc::clone(&seen);
    let writer = writer(path.clone(), n, every, move |path, file, next| {
        // The reader must have opened this file (seen one of its lines) before it goes: a
        // file created and rotated away unseen is lost, with fail2ban as here.
        wait_seen(&seen_by_writer, next - every);
        drop(file);
        std::fs::rename(path, path.with_extension(format!("log.{next}"))).unwrap();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    });
    let (lines, batches) = take(&mut follower, n, Some(&seen)).await;
    writer.join().unwrap();
    assert_eq!(lines, numbered(n), "every line once, in order");
    let last = batches.last().unwrap();
    assert_eq!(&*last.path, path.as_path());
    assert_eq!(
        last.position.offset,
        std::fs::metadata(&path).unwrap().len()
    );
}

#[tokio::test]
async fn rename_and_create_under_a_continuous_writer_inotify() {
    rename_and_create_under_a_writer(false).await;
}

#[tokio::test]
async fn rename_and_create_under_a_continuous_writer_polling() {
    rename_and_create_under_a_writer(true).await;
}

async fn copytruncate_under_a_writer(polling: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    File::create(&path).unwrap();
    let mut follower = follower(vec![spec(&path, polling)]);
    let seen = Arc::new(AtomicUsize::new(0));
    let (n, every) = (3000, 400);
    let seen_by_writer = Arc::clone(&seen);
    let writer = writer(path.clone(), n, every, move |path, file, next| {
        // A line written between logrotate's copy and its truncation is lost to every reader;
        // the reader having read the file up to the copy is what copytruncate assumes. The
        // writer then refills the file at once, often past the old offset before the reader
        // looks again: only the first line's hash tells the truncation then.
        wait_seen(&seen_by_writer, next - 1);
        std::fs::copy(path, path.with_extension(format!("log.{next}"))).unwrap();
        file.set_len(0).unwrap();
        file
    });
    let (lines, _) = take(&mut follower, n, Some(&seen)).await;
    writer.join().unwrap();
    assert_eq!(lines, numbered(n), "every line once, in order");
}

#[tokio::test]
async fn copytruncate_under_a_continuous_writer_inotify() {
    copytruncate_under_a_writer(false).await;
}

#[tokio::test]
async fn copytruncate_under_a_continuous_writer_polling() {
    copytruncate_under_a_writer(true).await;
}

#[tokio::test]
async fn a_partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "one\ntw");
    let mut follower = follower(vec![spec(&path, false)]);
    assert_eq!(take(&mut follower, 1, None).await.0, ["one"]);
    append(&path, "o\nthree\n");
    let (lines, batches) = take(&mut follower, 2, None).await;
    assert_eq!(lines, ["two", "three"]);
    assert_eq!(batches.last().unwrap().position.offset, 14);
}

#[tokio::test]
async fn a_glob_follows_files_that_appear_later_and_in_a_directory_made_later() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), "a1\n");
    let mut follower = Follower::with_intervals(
        vec![
            spec(&dir.path().join("*.log"), false),
            spec(&dir.path().join("sub/*.log"), false),
        ],
        HashMap::new(),
        fast(),
    )
    .unwrap();
    assert_eq!(take(&mut follower, 1, None).await.0, ["a1"]);
    append(&dir.path().join("b.txt"), "not matched\n");
    append(&dir.path().join(".hidden.log"), "not matched either\n");
    append(&dir.path().join("b.log"), "b1\nb2\n");
    let (lines, batches) = take(&mut follower, 2, None).await;
    assert_eq!(lines, ["b1", "b2"]);
    assert_eq!(&*batches[0].path, dir.path().join("b.log").as_path());
    assert_eq!(&*batches[0].specs, [0]);
    // The directory does not exist yet: the poll tick finds it, then inotify watches it.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    append(&dir.path().join("sub/c.log"), "c1\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["c1"]);
    append(&dir.path().join("sub/c.log"), "c2\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["c2"]);
    let mut files = follower.files();
    files.sort();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.strip_prefix(dir.path()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            Path::new("a.log"),
            Path::new("b.log"),
            Path::new("sub/c.log")
        ]
    );
}

#[tokio::test]
async fn a_directory_removed_and_made_again_is_watched_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nginx");
    std::fs::create_dir(&dir).unwrap();
    append(&dir.join("access.log"), "1\n");
    let mut follower = follower(vec![spec(&dir.join("*.log"), false)]);
    assert_eq!(take(&mut follower, 1, None).await.0, ["1"]);
    std::fs::remove_dir_all(&dir).unwrap();
    drive_until(&mut follower, |f| f.files().is_empty()).await;
    std::fs::create_dir(&dir).unwrap();
    // No safety tick in these tests: the missing directory is looked for on the poll tick,
    // then watched again.
    append(&dir.join("access.log"), "2\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["2"]);
    append(&dir.join("access.log"), "3\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["3"]);
}

#[tokio::test]
async fn a_symbolic_link_to_a_file_elsewhere_is_read_as_it_grows() {
    let root = tempfile::tempdir().unwrap();
    let (data, logs) = (root.path().join("data"), root.path().join("logs"));
    std::fs::create_dir(&data).unwrap();
    std::fs::create_dir(&logs).unwrap();
    append(&data.join("app.log"), "1\n");
    std::os::unix::fs::symlink(data.join("app.log"), logs.join("app.log")).unwrap();
    let mut follower = follower(vec![spec(&logs.join("app.log"), false)]);
    assert_eq!(take(&mut follower, 1, None).await.0, ["1"]);
    // Only `logs` is watched; the writes happen in `data`.
    append(&data.join("app.log"), "2\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["2"]);
}

#[tokio::test]
async fn one_reader_per_file_whatever_the_number_of_jails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    append(&path, "x\n");
    let mut follower = follower(vec![
        spec(&path, false),
        spec(&dir.path().join("other.log"), false),
        spec(&dir.path().join("auth.*"), true),
    ]);
    let (lines, batches) = take(&mut follower, 1, None).await;
    assert_eq!(lines, ["x"]);
    assert_eq!(&*batches[0].specs, [0, 2]);
    append(&path, "y\n");
    let (lines, batches) = take(&mut follower, 1, None).await;
    assert_eq!(
        (lines, &*batches[0].specs),
        (vec!["y".to_owned()], &[0, 2][..])
    );
    assert_eq!(follower.files(), [path]);
}

#[tokio::test]
async fn a_restart_resumes_where_the_store_says_and_tail_starts_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    let fresh = dir.path().join("fresh.log");
    append(&path, "old 1\nold 2\n");
    let mut first = follower(vec![spec(&path, false)]);
    let (_, batches) = take(&mut first, 2, None).await;
    let stored = batches.last().unwrap().position;
    drop(first);
    append(&path, "while down\n");
    append(&fresh, "before the start\n");
    let mut tail = spec(&fresh, false);
    tail.from_end = true;
    let positions = HashMap::from([(path.clone(), stored)]);
    let mut second =
        Follower::with_intervals(vec![spec(&path, false), tail], positions, fast()).unwrap();
    assert_eq!(take(&mut second, 1, None).await.0, ["while down"]);
    append(&fresh, "after the start\n");
    assert_eq!(take(&mut second, 1, None).await.0, ["after the start"]);
}

#[tokio::test]
async fn encodings_and_a_line_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    let mut bytes = b"user m\xfcller from 192.0.2.1\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', lines::MAX_LINE + 10));
    bytes.extend(b"\nafter\n");
    std::fs::write(&path, bytes).unwrap();
    let mut follower = follower(vec![spec(&path, false)]);
    let (lines, _) = take(&mut follower, 3, None).await;
    assert_eq!(lines[0], "user m\u{fc}ller from 192.0.2.1");
    assert_eq!(lines[1].len(), lines::MAX_LINE);
    assert_eq!(lines[2], "after");
}

/// Drives the follower (dropping its batches) until `done`; panics after [`WAIT`].
async fn drive_until(follower: &mut Follower, done: impl Fn(&Follower) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(follower) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), follower.next()).await;
    }
}

#[tokio::test]
async fn a_file_removed_for_good_is_let_go_after_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, "1\n");
    let mut follower = follower(vec![spec(&dir.path().join("*.log"), false)]);
    take(&mut follower, 1, None).await;
    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // Its writer has not noticed yet: what it writes is still read.
    writer.write_all(b"2\n").unwrap();
    assert_eq!(take(&mut follower, 1, None).await.0, ["2"]);
    append(&dir.path().join("b.log"), "b\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["b"]);
    let b = [dir.path().join("b.log")];
    drive_until(&mut follower, |f| f.files() == b).await;
}

#[tokio::test]
async fn a_writer_that_reopens_its_log_late_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    append(&path, "old 1\n");
    let mut follower = follower(vec![spec(&path, false)]);
    take(&mut follower, 1, None).await;
    let mut old = OpenOptions::new().append(true).open(&path).unwrap();
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    append(&path, "new 1\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["new 1"]);
    // logrotate's postrotate has not yet told the writer to reopen: it writes to the old file.
    old.write_all(b"old 2\n").unwrap();
    assert_eq!(take(&mut follower, 1, None).await.0, ["old 2"]);
    append(&path, "new 2\n");
    assert_eq!(take(&mut follower, 1, None).await.0, ["new 2"]);
    assert_eq!(follower.files(), [path]);
}

/// Numbers for the README: `cargo test -p banxdp --lib source::follow_tests::measure --
/// --ignored --nocapture` (add `--release` for the real figures).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn measure_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.log");
    let n = 1_000_000;
    let line = "Dec  5 10:14:03 host sshd[4242]: Failed password for invalid user admin from 192.0.2.77 port 52234 ssh2\n";
    std::fs::write(&path, line.repeat(n)).unwrap();
    let started = std::time::Instant::now();
    let mut follower = follower(vec![spec(&path, false)]);
    let (mut got, mut batches) = (0, 0);
    while got < n {
        got += follower.next().await.lines.len();
        batches += 1;
    }
    let took = started.elapsed();
    println!(
        "backlog: {n} lines ({} MB) in {took:?}: {:.0} lines/s, {batches} batches",
        n * line.len() / 1_000_000,
        f64::from(u32::try_from(n).expect("a million")) / took.as_secs_f64()
    );
    let mut writer = OpenOptions::new().append(true).open(&path).unwrap();
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let sent = std::time::Instant::now();
        writer.write_all(line.as_bytes()).unwrap();
        let batch = tokio::time::timeout(WAIT, follower.next()).await.unwrap();
        latencies.push(sent.elapsed());
        assert_eq!(batch.lines.len(), 1);
    }
    latencies.sort();
    println!(
        "inotify latency, write to batch: median {:?}, p99 {:?}, max {:?}",
        latencies[100], latencies[198], latencies[199]
    );
}

/// The daemon drives sources from spawned tasks: they and their futures must be `Send`.
#[test]
fn sources_can_move_to_a_task() {
    fn send<T: Send>(_: &T) {}
    fn journal_next_is_send(source: &mut JournalSource) -> impl std::future::Future + Send + '_ {
        source.next()
    }
    let dir = tempfile::tempdir().unwrap();
    let mut follower = follower(vec![spec(&dir.path().join("*.log"), false)]);
    send(&follower);
    send(&follower.next());
    let _ = journal_next_is_send;
}
