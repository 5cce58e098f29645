//! An AWS Query answer (IAM, STS XML): never panic; a tree that parses is within the depth and
//! size bounds, and written back out (text first, then children) it parses to the same tree.
#![no_main]

use irsa_core::aws_xml::{self, Element, MAX_DEPTH, MAX_ELEMENTS};
use libfuzzer_sys::fuzz_target;

fn write(el: &Element, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    out.push('>');
    for c in el.text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    for child in &el.children {
        write(child, out);
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

fn measure(el: &Element, depth: usize, count: &mut usize) -> usize {
    *count += 1;
    el.children
        .iter()
        .map(|c| measure(c, depth + 1, count))
        .max()
        .unwrap_or(depth)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(root) = aws_xml::parse(text) else {
        return;
    };
    let _ = aws_xml::query_error(&root);
    let mut count = 0;
    assert!(measure(&root, 1, &mut count) <= MAX_DEPTH);
    assert!(count <= MAX_ELEMENTS);
    let mut again = String::new();
    write(&root, &mut again);
    let reparsed = aws_xml::parse(&again);
    assert_eq!(reparsed.as_ref(), Ok(&root), "{again}");
});
