//! The crate's hand-written repr(C) types against the layout generated
//! from the C header (plugin-layout.txt): every struct's size and
//! alignment, every member's offset and size, and the constants.  A
//! member missing on either side, or in another place, fails.

use cmdhost::sys::*;
use std::collections::BTreeMap;
use std::mem::{align_of, size_of, MaybeUninit};
use std::path::PathBuf;

fn layout_file() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var("CMDHOST_LAYOUT").map(PathBuf::from).unwrap_or_default(),
        dir.join("plugin-layout.txt"),
        dir.join("../include/cmdhost/plugin-layout.txt"),
    ];
    for p in candidates.iter() {
        if let Ok(t) = std::fs::read_to_string(p) {
            return t;
        }
    }
    panic!("plugin-layout.txt not found (set CMDHOST_LAYOUT)");
}

macro_rules! member {
    ($map:ident, $s:ident, $m:ident, $cname:expr) => {{
        let t = MaybeUninit::<$s>::uninit();
        let base = t.as_ptr() as usize;
        let f = unsafe { std::ptr::addr_of!((*t.as_ptr()).$m) };
        let size = {
            fn sz<T>(_: *const T) -> usize {
                size_of::<T>()
            }
            sz(f)
        };
        $map.insert(
            format!("member {} {}", stringify!($s), $cname),
            format!("{} {}", f as usize - base, size),
        );
    }};
    ($map:ident, $s:ident, $m:ident) => {
        member!($map, $s, $m, stringify!($m))
    };
}

macro_rules! strukt {
    ($map:ident, $s:ident) => {
        $map.insert(
            format!("struct {}", stringify!($s)),
            format!("size {} align {}", size_of::<$s>(), align_of::<$s>()),
        );
    };
}

fn rust_side() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    strukt!(m, cmdhost_field);
    member!(m, cmdhost_field, name);
    member!(m, cmdhost_field, type_, "type");
    member!(m, cmdhost_field, required);
    strukt!(m, cmdhost_command);
    member!(m, cmdhost_command, name);
    member!(m, cmdhost_command, summary);
    member!(m, cmdhost_command, fields);
    member!(m, cmdhost_command, validate);
    member!(m, cmdhost_command, execute);
    member!(m, cmdhost_command, flags);
    strukt!(m, cmdhost_api);
    member!(m, cmdhost_api, size);
    member!(m, cmdhost_api, abi_major);
    member!(m, cmdhost_api, abi_minor);
    member!(m, cmdhost_api, reg_config);
    member!(m, cmdhost_api, reg_set_state);
    member!(m, cmdhost_api, reg_add_command);
    member!(m, cmdhost_api, reg_error);
    member!(m, cmdhost_api, reg_log);
    member!(m, cmdhost_api, reg_plugin_name);
    member!(m, cmdhost_api, ctx_state);
    member!(m, cmdhost_api, ctx_payload);
    member!(m, cmdhost_api, ctx_payload_text);
    member!(m, cmdhost_api, ctx_request_id);
    member!(m, cmdhost_api, ctx_command);
    member!(m, cmdhost_api, ctx_time_left_ms);
    member!(m, cmdhost_api, ctx_log);
    member!(m, cmdhost_api, ctx_respond);
    member!(m, cmdhost_api, ctx_fail);
    member!(m, cmdhost_api, ctx_client_id);
    member!(m, cmdhost_api, ctx_respond_text);
    member!(m, cmdhost_api, ctx_client_id_text);
    member!(m, cmdhost_api, ctx_emit_text);
    member!(m, cmdhost_api, ctx_emit);
    member!(m, cmdhost_api, reg_set_relay);
    member!(m, cmdhost_api, relay_put);
    strukt!(m, cmdhost_plugin_desc);
    member!(m, cmdhost_plugin_desc, magic);
    member!(m, cmdhost_plugin_desc, abi_major);
    member!(m, cmdhost_plugin_desc, abi_minor);
    member!(m, cmdhost_plugin_desc, name);
    member!(m, cmdhost_plugin_desc, version);
    member!(m, cmdhost_plugin_desc, register_fn);
    let consts: [(&str, i64); 24] = [
        ("CMDHOST_MAGIC", CMDHOST_MAGIC as i64),
        ("CMDHOST_ABI_MAJOR", CMDHOST_ABI_MAJOR as i64),
        ("CMDHOST_ABI_MINOR", CMDHOST_ABI_MINOR as i64),
        ("CMDHOST_NAME_MAX", CMDHOST_NAME_MAX as i64),
        ("CMDHOST_LOG_MAX", CMDHOST_LOG_MAX as i64),
        ("CMDHOST_REG_ERROR_MAX", CMDHOST_REG_ERROR_MAX as i64),
        ("CMDHOST_BODY_TEXT_MAX", CMDHOST_BODY_TEXT_MAX as i64),
        ("CMDHOST_EVENTS_MAX", CMDHOST_EVENTS_MAX as i64),
        ("CMDHOST_EVENT_MAX", CMDHOST_EVENT_MAX as i64),
        ("CMDHOST_SUBJECT_MAX", CMDHOST_SUBJECT_MAX as i64),
        ("CMDHOST_EVENT_ID_MAX", CMDHOST_EVENT_ID_MAX as i64),
        ("CMDHOST_SERIAL", CMDHOST_SERIAL as i64),
        ("CMDHOST_BLOCKING", CMDHOST_BLOCKING as i64),
        ("CMDHOST_ANY", CMDHOST_ANY as i64),
        ("CMDHOST_STRING", CMDHOST_STRING as i64),
        ("CMDHOST_NUMBER", CMDHOST_NUMBER as i64),
        ("CMDHOST_INTEGER", CMDHOST_INTEGER as i64),
        ("CMDHOST_BOOLEAN", CMDHOST_BOOLEAN as i64),
        ("CMDHOST_OBJECT", CMDHOST_OBJECT as i64),
        ("CMDHOST_ARRAY", CMDHOST_ARRAY as i64),
        ("CMDHOST_LOG_DEBUG", CMDHOST_LOG_DEBUG as i64),
        ("CMDHOST_LOG_INFO", CMDHOST_LOG_INFO as i64),
        ("CMDHOST_LOG_WARN", CMDHOST_LOG_WARN as i64),
        ("CMDHOST_LOG_ERROR", CMDHOST_LOG_ERROR as i64),
    ];
    for (k, v) in consts.iter() {
        m.insert(format!("const {}", k), v.to_string());
    }
    m
}

#[test]
fn repr_c_types_match_the_c_layout() {
    if size_of::<usize>() != 8 {
        eprintln!("skipped: plugin-layout.txt describes LP64 targets");
        return;
    }
    let mut c = BTreeMap::new();
    for line in layout_file().lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let (key, val) = match w[0] {
            "struct" => (format!("struct {}", w[1]), w[2..].join(" ")),
            "member" => (format!("member {} {}", w[1], w[2]), w[3..].join(" ")),
            "const" => (format!("const {}", w[1]), w[2].to_string()),
            other => panic!("unknown line kind {}", other),
        };
        c.insert(key, val);
    }
    let r = rust_side();
    let mut bad = Vec::new();
    for (k, v) in c.iter() {
        match r.get(k) {
            Some(rv) if rv == v => {}
            Some(rv) => bad.push(format!("{}: C {} but Rust {}", k, v, rv)),
            None => bad.push(format!("{}: in the C layout, not in the crate", k)),
        }
    }
    for k in r.keys() {
        if !c.contains_key(k) {
            bad.push(format!("{}: in the crate, not in the C layout", k));
        }
    }
    assert!(bad.is_empty(), "layout differs:\n{}", bad.join("\n"));
}
