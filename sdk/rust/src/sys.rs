//! The raw C ABI of `cmdhost/plugin.h`, written by hand (no bindgen) and
//! checked against `plugin-layout.txt` by this crate's tests.  Everything
//! here mirrors the header one to one; the contract of each table entry
//! is documented on `struct cmdhost_api` in the header.

#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

pub const CMDHOST_MAGIC: u32 = 0x434d_4448;
pub const CMDHOST_ABI_MAJOR: u16 = 1;
/// The minor this crate is written against: it calls 1.1 entries (and
/// describes the 1.2 ones, events, without wrapping them yet).
pub const CMDHOST_ABI_MINOR: u16 = 2;
pub const CMDHOST_NAME_MAX: usize = 128;
pub const CMDHOST_LOG_MAX: usize = 1024;
pub const CMDHOST_REG_ERROR_MAX: usize = 511;
pub const CMDHOST_BODY_TEXT_MAX: usize = 16 * 1024 * 1024;
pub const CMDHOST_EVENTS_MAX: usize = 64;
pub const CMDHOST_EVENT_MAX: usize = 256 * 1024;
pub const CMDHOST_SUBJECT_MAX: usize = 128;
pub const CMDHOST_EVENT_ID_MAX: usize = 128;
pub const CMDHOST_SERIAL: c_uint = 1 << 0;
pub const CMDHOST_BLOCKING: c_uint = 1 << 1;

pub const CMDHOST_ANY: c_int = 0;
pub const CMDHOST_STRING: c_int = 1;
pub const CMDHOST_NUMBER: c_int = 2;
pub const CMDHOST_INTEGER: c_int = 3;
pub const CMDHOST_BOOLEAN: c_int = 4;
pub const CMDHOST_OBJECT: c_int = 5;
pub const CMDHOST_ARRAY: c_int = 6;

pub const CMDHOST_LOG_DEBUG: c_int = 0;
pub const CMDHOST_LOG_INFO: c_int = 1;
pub const CMDHOST_LOG_WARN: c_int = 2;
pub const CMDHOST_LOG_ERROR: c_int = 3;

/// Opaque; its first member is `*const cmdhost_api`.
#[repr(C)]
pub struct cmdhost_registrar {
    pub api: *const cmdhost_api,
}

/// Opaque; its first member is `*const cmdhost_api`.
#[repr(C)]
pub struct cmdhost_ctx {
    pub api: *const cmdhost_api,
}

/// Opaque; its first member is `*const cmdhost_api` (ABI 1.2).
#[repr(C)]
pub struct cmdhost_relay {
    pub api: *const cmdhost_api,
}

/// json-c's object, never looked into here.
#[repr(C)]
pub struct json_object {
    _private: [u8; 0],
}

pub type cmdhost_validate_fn = Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> c_int>;
pub type cmdhost_execute_fn = Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> c_int>;
pub type cmdhost_register_fn = Option<unsafe extern "C" fn(*mut cmdhost_registrar) -> c_int>;
pub type cmdhost_fini_fn = Option<unsafe extern "C" fn(*mut c_void)>;
pub type cmdhost_relay_fetch_fn =
    Option<unsafe extern "C" fn(*mut c_void, *mut cmdhost_relay, usize) -> c_int>;
pub type cmdhost_relay_ack_fn =
    Option<unsafe extern "C" fn(*mut c_void, *const *const c_char, usize) -> c_int>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmdhost_field {
    pub name: *const c_char,
    pub type_: c_int,
    pub required: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmdhost_command {
    pub name: *const c_char,
    pub summary: *const c_char,
    pub fields: *const cmdhost_field,
    pub validate: cmdhost_validate_fn,
    pub execute: cmdhost_execute_fn,
    pub flags: c_uint,
}

#[repr(C)]
pub struct cmdhost_api {
    pub size: usize,
    pub abi_major: c_uint,
    pub abi_minor: c_uint,

    pub reg_config:
        Option<unsafe extern "C" fn(*mut cmdhost_registrar, *const c_char) -> *const c_char>,
    pub reg_set_state:
        Option<unsafe extern "C" fn(*mut cmdhost_registrar, *mut c_void, cmdhost_fini_fn)>,
    pub reg_add_command: Option<
        unsafe extern "C" fn(*mut cmdhost_registrar, *const cmdhost_command, usize) -> c_int,
    >,
    pub reg_error: Option<unsafe extern "C" fn(*mut cmdhost_registrar, *const c_char)>,
    pub reg_log: Option<unsafe extern "C" fn(*mut cmdhost_registrar, c_int, *const c_char)>,
    pub reg_plugin_name: Option<unsafe extern "C" fn(*mut cmdhost_registrar) -> *const c_char>,

    pub ctx_state: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *mut c_void>,
    pub ctx_payload: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *mut json_object>,
    pub ctx_payload_text:
        Option<unsafe extern "C" fn(*mut cmdhost_ctx, *mut usize) -> *const c_char>,
    pub ctx_request_id: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *const c_char>,
    pub ctx_command: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *const c_char>,
    pub ctx_time_left_ms: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> i64>,
    pub ctx_log: Option<unsafe extern "C" fn(*mut cmdhost_ctx, c_int, *const c_char)>,
    pub ctx_respond: Option<unsafe extern "C" fn(*mut cmdhost_ctx, c_int, *mut json_object) -> c_int>,
    pub ctx_fail: Option<
        unsafe extern "C" fn(*mut cmdhost_ctx, c_int, *const c_char, *const c_char) -> c_int,
    >,
    pub ctx_client_id: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *mut json_object>,

    // ABI 1.1
    pub ctx_respond_text:
        Option<unsafe extern "C" fn(*mut cmdhost_ctx, c_int, *const c_char, usize) -> c_int>,
    pub ctx_client_id_text: Option<unsafe extern "C" fn(*mut cmdhost_ctx) -> *const c_char>,

    // ABI 1.2: events
    pub ctx_emit_text: Option<
        unsafe extern "C" fn(*mut cmdhost_ctx, *const c_char, *const c_char, usize) -> c_int,
    >,
    pub ctx_emit:
        Option<unsafe extern "C" fn(*mut cmdhost_ctx, *const c_char, *mut json_object) -> c_int>,
    pub reg_set_relay: Option<
        unsafe extern "C" fn(
            *mut cmdhost_registrar,
            cmdhost_relay_fetch_fn,
            cmdhost_relay_ack_fn,
        ) -> c_int,
    >,
    pub relay_put: Option<
        unsafe extern "C" fn(
            *mut cmdhost_relay,
            *const c_char,
            *const c_char,
            *const c_char,
            usize,
        ) -> c_int,
    >,
}

#[repr(C)]
pub struct cmdhost_plugin_desc {
    pub magic: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub name: *const c_char,
    pub version: *const c_char,
    pub register_fn: cmdhost_register_fn,
}

// The descriptor is immutable static data the daemon only reads.
unsafe impl Sync for cmdhost_plugin_desc {}

/// json-c's own functions, for plugins built with the crate's `json-c`
/// feature, which links libjson-c (the daemon's copy in the process, so
/// objects pass both ways).  Ownership is json-c's: a reference made by
/// `json_object_new_*` or `json_tokener_parse` is the caller's until it
/// is put, added to another object (`json_object_object_add` takes the
/// value's reference) or handed to `Ctx::respond_json_c`; what
/// `json_object_object_get_ex` and `json_object_get_string` give is
/// borrowed from the object holding it.  A binding of the rest of json-c
/// adds its own `extern` block the same way.
#[cfg(feature = "json-c")]
pub mod jsonc {
    use super::json_object;
    use std::os::raw::{c_char, c_int};

    /// json_object_to_json_string_ext(): no whitespace.
    pub const JSON_C_TO_STRING_PLAIN: c_int = 0;

    #[link(name = "json-c")]
    extern "C" {
        pub fn json_tokener_parse(text: *const c_char) -> *mut json_object;
        pub fn json_object_to_json_string_ext(o: *mut json_object, flags: c_int) -> *const c_char;
        pub fn json_object_get(o: *mut json_object) -> *mut json_object;
        pub fn json_object_put(o: *mut json_object) -> c_int;
        pub fn json_object_new_object() -> *mut json_object;
        pub fn json_object_object_add(o: *mut json_object, key: *const c_char, value: *mut json_object) -> c_int;
        pub fn json_object_object_get_ex(o: *const json_object, key: *const c_char, value: *mut *mut json_object) -> c_int;
        pub fn json_object_new_string(s: *const c_char) -> *mut json_object;
        pub fn json_object_new_int64(i: i64) -> *mut json_object;
        pub fn json_object_get_string(o: *mut json_object) -> *const c_char;
        pub fn json_object_get_int64(o: *const json_object) -> i64;
    }
}
