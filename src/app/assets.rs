//! The viewer's files, compiled into the binary so `GET /` works offline with no build
//! step and no CDN: the page, its script and style, and the JavaScript client it runs on
//! (served from `clients/js/src/index.js`, the same module the npm package ships).

/// One embedded file: its `Content-Type` and bytes.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The embedded file served at `path`, if any.
pub fn find(path: &str) -> Option<Asset> {
    let (content_type, body): (&str, &[u8]) = match path {
        "/" | "/index.html" => (HTML, include_bytes!("../../web/index.html")),
        "/ui/app.js" => (JS, include_bytes!("../../web/app.js")),
        "/ui/app.css" => (CSS, include_bytes!("../../web/app.css")),
        "/ui/tracecast-client.js" => (JS, include_bytes!("../../clients/js/src/index.js")),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let page = std::str::from_utf8(find("/").map(|a| a.body).unwrap_or_default()).unwrap();
        for path in ["/ui/app.js", "/ui/app.css"] {
            assert!(page.contains(path), "index.html loads {path}");
            assert!(find(path).is_some(), "{path} is embedded");
        }
        let app =
            std::str::from_utf8(find("/ui/app.js").map(|a| a.body).unwrap_or_default()).unwrap();
        assert!(app.contains("./tracecast-client.js"));
        assert!(find("/ui/tracecast-client.js").is_some());
        assert!(find("/ui/missing.js").is_none());
    }
}
