//! The viewer is served by the binary itself: the page, its script and style, and the
//! JavaScript client, each byte for byte the file in the repository, with no network
//! beyond the server (no CDN).

mod common;
use common::TestServer;

/// The value of `name` in a raw response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

#[test]
fn the_viewer_and_the_client_module_come_from_the_binary() {
    let s = TestServer::start("[storage]\npersist = false\n");
    let root = env!("CARGO_MANIFEST_DIR");
    for (path, file, kind) in [
        ("/", "web/index.html", "text/html"),
        ("/?session=demo", "web/index.html", "text/html"),
        ("/ui/app.js", "web/app.js", "text/javascript"),
        ("/ui/app.css", "web/app.css", "text/css"),
        (
            "/ui/tracecast-client.js",
            "clients/js/src/index.js",
            "text/javascript",
        ),
    ] {
        let (status, headers, body) = s.http("GET", path, &[], b"");
        assert_eq!(status, 200, "{path}");
        let ct = header(&headers, "content-type").unwrap_or_default();
        assert!(ct.starts_with(kind), "{path}: content-type {ct}");
        let want = std::fs::read(format!("{root}/{file}")).expect("asset file");
        assert!(
            body == want,
            "{path} serves {file} as it is in the repository"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "{path} loads nothing from another host"
        );
    }
    let (status, _, _) = s.http("GET", "/ui/nope.js", &[], b"");
    assert_eq!(status, 404);
    let (status, _, _) = s.http("POST", "/", &[], b"");
    assert_eq!(status, 405);
}
