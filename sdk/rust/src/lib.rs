//! Write cmdhost command plugins in Rust.
//!
//! A plugin is a `cdylib` crate that calls [`plugin!`] once with its name
//! and a registration function.  The daemon loads the `.so`, reads the
//! descriptor the macro exports, and calls the registration function,
//! which reads config, sets the state and adds commands through a
//! [`Registrar`].  Each call of a command gets a [`Ctx`]: the payload as
//! JSON text (and [`json::Value`] to read it), the request's context,
//! logging, and its answer is the [`Reply`] the handler returns.
//!
//! ```ignore
//! use cmdhost::{json, Ctx, FieldType, Registrar, Reply};
//!
//! fn greet(ctx: &Ctx) -> Reply {
//!     let p = ctx.payload();
//!     let name = p.get("name").and_then(json::Value::as_str).unwrap_or("?");
//!     Reply::ok(json::Object::new().str("greeting", &format!("hello, {}", name)).finish())
//! }
//!
//! fn register(reg: &mut Registrar) -> Result<(), String> {
//!     reg.command("hello.greet").field("name", FieldType::String, true).execute(greet).add()
//! }
//!
//! cmdhost::plugin!("hello", register);
//! ```
//!
//! Panics: every callback (registration, validate, execute, the state's
//! `Drop` as `fini`) runs inside `catch_unwind`.  A panic in a command is
//! answered 500 `plugin_panicked` with the panic message, the panic is
//! logged as one JSON line through the daemon's logger, and the daemon
//! goes on serving.  This needs the default `panic = "unwind"`: with
//! `panic = "abort"` a panic aborts the process hosting the plugin (the
//! daemon itself, or its worker with `isolation = process`); the crate
//! logs a warning at registration when built that way.
//!
//! Thread-locals: a `thread_local!` whose type has a destructor registers
//! that destructor with the C library on each daemon thread that touches
//! it, which keeps the plugin's code mapped after unload until those
//! threads exit (every old generation stays in memory).  Keep per-thread
//! data out of plugins, or use types without `Drop` (`Cell<u64>`,
//! `const` initializers).  This crate's own thread-locals have no
//! destructor.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

pub mod json;
pub mod sys;

/// The declared type of a payload field; the daemon checks it before
/// validate or execute runs (400 `invalid_payload` naming the field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Any,
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl FieldType {
    fn raw(self) -> c_int {
        match self {
            FieldType::Any => sys::CMDHOST_ANY,
            FieldType::String => sys::CMDHOST_STRING,
            FieldType::Number => sys::CMDHOST_NUMBER,
            FieldType::Integer => sys::CMDHOST_INTEGER,
            FieldType::Boolean => sys::CMDHOST_BOOLEAN,
            FieldType::Object => sys::CMDHOST_OBJECT,
            FieldType::Array => sys::CMDHOST_ARRAY,
        }
    }
}

/// Log levels of the daemon's logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn raw(self) -> c_int {
        match self {
            Level::Debug => sys::CMDHOST_LOG_DEBUG,
            Level::Info => sys::CMDHOST_LOG_INFO,
            Level::Warn => sys::CMDHOST_LOG_WARN,
            Level::Error => sys::CMDHOST_LOG_ERROR,
        }
    }
}

/// How a call finishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A 2xx status and a body as JSON text (the daemon checks it
    /// strictly: invalid text is answered 500 naming the plugin).
    Json { status: u16, body: String },
    /// A 4xx/5xx status, a snake_case code and a message.
    Fail { status: u16, code: String, message: String },
}

impl Reply {
    /// 200 with `body` (JSON text).
    pub fn ok<S: Into<String>>(body: S) -> Reply {
        Reply::Json { status: 200, body: body.into() }
    }

    /// A chosen 2xx status with `body` (JSON text).
    pub fn respond<S: Into<String>>(status: u16, body: S) -> Reply {
        Reply::Json { status, body: body.into() }
    }

    /// An error: status 400..599, a code and a message.
    pub fn fail<C: Into<String>, M: Into<String>>(status: u16, code: C, message: M) -> Reply {
        Reply::Fail { status, code: code.into(), message: message.into() }
    }
}

pub type Validate = fn(&Ctx) -> Result<(), Reply>;
pub type Execute = fn(&Ctx) -> Reply;

struct Entry {
    validate: Option<Validate>,
    execute: Execute,
}

/// What one loaded generation keeps: the plugin's state and its handlers.
/// Owned by the daemon's state pointer; dropped by `fini`.
struct Generation {
    name: String,
    state: Option<Box<dyn Any + Send + Sync>>,
    commands: HashMap<String, Entry>,
    /// Names, summaries and fields handed to the daemon, which keeps
    /// pointers into them as long as the generation is loaded.
    strings: Vec<CString>,
    fields: Vec<Vec<sys::cmdhost_field>>,
}

// Raw pointers in `fields` point into `strings`, which never move.
unsafe impl Send for Generation {}
unsafe impl Sync for Generation {}

thread_local! {
    // The call or registration this thread is running, for the panic
    // hook.  Plain pointers: no destructor (see the crate docs).
    static CURRENT_CTX: Cell<*mut sys::cmdhost_ctx> = const { Cell::new(ptr::null_mut()) };
    static CURRENT_REG: Cell<*mut sys::cmdhost_registrar> = const { Cell::new(ptr::null_mut()) };
}

/// Text without NUL bytes, for the C side.
fn cstring(s: &str) -> CString {
    match CString::new(s) {
        Ok(c) => c,
        Err(_) => CString::new(s.replace('\0', "\\u0000")).unwrap_or_default(),
    }
}

unsafe fn borrowed_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("(a panic without a message)")
    }
}

/// The registration function's handle: config, state, commands, logging.
/// Valid only while the registration function runs.
pub struct Registrar {
    raw: *mut sys::cmdhost_registrar,
    gen: Box<Generation>,
}

impl Registrar {
    fn api(&self) -> &sys::cmdhost_api {
        unsafe { &*(*self.raw).api }
    }

    /// The value of `key` in `[plugin:NAME]`, or None.
    pub fn config(&self, key: &str) -> Option<String> {
        let k = cstring(key);
        let f = self.api().reg_config?;
        unsafe { borrowed_str(f(self.raw, k.as_ptr())).map(str::to_string) }
    }

    /// The plugin's name, as its descriptor gives it.
    pub fn plugin_name(&self) -> &str {
        &self.gen.name
    }

    /// Log one line tagged with the plugin (the daemon cuts it at 1 KiB).
    pub fn log(&self, level: Level, message: &str) {
        let m = cstring(message);
        if let Some(f) = self.api().reg_log {
            unsafe { f(self.raw, level.raw(), m.as_ptr()) }
        }
    }

    /// Set the generation's state, shared by every call (on several
    /// threads at once: use atomics or a Mutex inside).  It is dropped
    /// when the generation is unloaded (that is its `fini`), or when
    /// registration fails.
    pub fn set_state<S: Any + Send + Sync>(&mut self, state: S) {
        self.gen.state = Some(Box::new(state));
    }

    /// Start describing a command; finish with `.execute(f).add()`.
    pub fn command(&mut self, name: &str) -> CommandBuilder<'_> {
        CommandBuilder {
            reg: self,
            name: name.to_string(),
            summary: None,
            fields: Vec::new(),
            validate: None,
            execute: None,
            flags: 0,
        }
    }
}

/// A command being described.  `add()` hands it to the daemon.
pub struct CommandBuilder<'r> {
    reg: &'r mut Registrar,
    name: String,
    summary: Option<String>,
    fields: Vec<(String, FieldType, bool)>,
    validate: Option<Validate>,
    execute: Option<Execute>,
    flags: u32,
}

impl<'r> CommandBuilder<'r> {
    /// One line for `host.list`.
    pub fn summary(mut self, s: &str) -> Self {
        self.summary = Some(s.to_string());
        self
    }

    /// Declare a payload member the daemon checks before anything else.
    pub fn field(mut self, name: &str, t: FieldType, required: bool) -> Self {
        self.fields.push((name.to_string(), t, required));
        self
    }

    /// Check the payload before execute; `Err(reply)` refuses it
    /// (usually `Reply::fail(400, "invalid_payload", ...)`).
    pub fn validate(mut self, f: Validate) -> Self {
        self.validate = Some(f);
        self
    }

    /// The command itself (required).
    pub fn execute(mut self, f: Execute) -> Self {
        self.execute = Some(f);
        self
    }

    /// Never run two calls of it at once.
    pub fn serial(mut self) -> Self {
        self.flags |= sys::CMDHOST_SERIAL;
        self
    }

    /// It may block: always run it on the daemon's pool.
    pub fn blocking(mut self) -> Self {
        self.flags |= sys::CMDHOST_BLOCKING;
        self
    }

    /// Add the command.  Err carries the daemon's reason (bad or
    /// reserved name, duplicate, no execute); the registration function
    /// should return it.
    pub fn add(self) -> Result<(), String> {
        let execute = match self.execute {
            Some(f) => f,
            None => return Err(format!("command '{}' has no execute function", self.name)),
        };
        let gen = &mut self.reg.gen;
        let name = cstring(&self.name);
        let summary = self.summary.as_deref().map(cstring);
        let mut fields = Vec::new();
        for (n, t, r) in &self.fields {
            let c = cstring(n);
            fields.push(sys::cmdhost_field { name: c.as_ptr(), type_: t.raw(), required: *r as c_int });
            gen.strings.push(c);
        }
        fields.push(sys::cmdhost_field { name: ptr::null(), type_: 0, required: 0 });
        let cmd = sys::cmdhost_command {
            name: name.as_ptr(),
            summary: summary.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            fields: if self.fields.is_empty() { ptr::null() } else { fields.as_ptr() },
            validate: if self.validate.is_some() { Some(validate_tramp) } else { None },
            execute: Some(execute_tramp),
            flags: self.flags,
        };
        // CString and Vec buffers do not move when their owners move.
        gen.strings.push(name);
        if let Some(s) = summary {
            gen.strings.push(s);
        }
        gen.fields.push(fields);
        let api = unsafe { &*(*self.reg.raw).api };
        let add = api.reg_add_command.ok_or("the daemon's table has no reg_add_command")?;
        let rc = unsafe { add(self.reg.raw, &cmd, std::mem::size_of::<sys::cmdhost_command>()) };
        if rc != 0 {
            return Err(format!("the daemon refused command '{}'", self.name));
        }
        gen.commands.insert(self.name, Entry { validate: self.validate, execute });
        Ok(())
    }
}

/// One call of a command: valid only while validate or execute runs.
pub struct Ctx {
    raw: *mut sys::cmdhost_ctx,
    gen: *const Generation,
}

impl Ctx {
    fn api(&self) -> &sys::cmdhost_api {
        unsafe { &*(*self.raw).api }
    }

    fn gen(&self) -> &Generation {
        unsafe { &*self.gen }
    }

    /// The state given to `Registrar::set_state`, if it has type `S`.
    pub fn state<S: Any + Send + Sync>(&self) -> Option<&S> {
        self.gen().state.as_ref().and_then(|s| s.downcast_ref::<S>())
    }

    /// The payload as compact JSON text (valid UTF-8).
    pub fn payload_text(&self) -> &str {
        let f = match self.api().ctx_payload_text {
            Some(f) => f,
            None => return "{}",
        };
        let mut len = 0usize;
        unsafe {
            let p = f(self.raw, &mut len);
            if p.is_null() {
                return "null";
            }
            let bytes = std::slice::from_raw_parts(p as *const u8, len);
            std::str::from_utf8(bytes).unwrap_or("null")
        }
    }

    /// The payload parsed (an empty object when the text does not parse,
    /// which the daemon's own check makes impossible).
    pub fn payload(&self) -> json::Value {
        json::Value::parse(self.payload_text()).unwrap_or(json::Value::Object(Vec::new()))
    }

    /// The daemon's id of this request, as its logs show it.
    pub fn request_id(&self) -> &str {
        match self.api().ctx_request_id {
            Some(f) => unsafe { borrowed_str(f(self.raw)).unwrap_or("") },
            None => "",
        }
    }

    /// The command name this call was made for.
    pub fn command(&self) -> &str {
        match self.api().ctx_command {
            Some(f) => unsafe { borrowed_str(f(self.raw)).unwrap_or("") },
            None => "",
        }
    }

    /// The client's "id" as JSON text, or None.
    pub fn client_id(&self) -> Option<&str> {
        let f = self.api().ctx_client_id_text?;
        unsafe { borrowed_str(f(self.raw)) }
    }

    /// Milliseconds left before the deadline (0 when passed).
    pub fn time_left_ms(&self) -> i64 {
        match self.api().ctx_time_left_ms {
            Some(f) => unsafe { f(self.raw) },
            None => 0,
        }
    }

    /// Log one line with the request's context (the daemon cuts it at
    /// 1 KiB and escapes it).
    pub fn log(&self, level: Level, message: &str) {
        let m = cstring(message);
        if let Some(f) = self.api().ctx_log {
            unsafe { f(self.raw, level.raw(), m.as_ptr()) }
        }
    }

    pub fn debug(&self, m: &str) {
        self.log(Level::Debug, m)
    }
    pub fn info(&self, m: &str) {
        self.log(Level::Info, m)
    }
    pub fn warn(&self, m: &str) {
        self.log(Level::Warn, m)
    }
    pub fn error(&self, m: &str) {
        self.log(Level::Error, m)
    }

    /// The payload as a json-c object, borrowed for this call.
    #[cfg(feature = "json-c")]
    pub fn payload_json_c(&self) -> *mut sys::json_object {
        match self.api().ctx_payload {
            Some(f) => unsafe { f(self.raw) },
            None => ptr::null_mut(),
        }
    }

    /// Finish with a json-c body now (ownership of one reference passes
    /// to the daemon); the handler's own Reply is then ignored.
    ///
    /// # Safety
    /// `body` must be a json-c object reference the caller owns, or null.
    #[cfg(feature = "json-c")]
    pub unsafe fn respond_json_c(&self, status: u16, body: *mut sys::json_object) -> bool {
        match self.api().ctx_respond {
            Some(f) => f(self.raw, status as c_int, body) == 0,
            None => false,
        }
    }

    fn finish(&self, r: Reply) {
        let api = self.api();
        match r {
            Reply::Json { status, body } => {
                if let Some(f) = api.ctx_respond_text {
                    unsafe {
                        f(self.raw, status as c_int, body.as_ptr() as *const c_char, body.len());
                    }
                }
            }
            Reply::Fail { status, code, message } => self.fail_raw(status, &code, &message),
        }
    }

    fn fail_raw(&self, status: u16, code: &str, message: &str) {
        let (c, m) = (cstring(code), cstring(message));
        if let Some(f) = self.api().ctx_fail {
            unsafe {
                f(self.raw, status as c_int, c.as_ptr(), m.as_ptr());
            }
        }
    }
}

/// Run f on behalf of ctx with panics caught: a panic becomes 500
/// plugin_panicked (the hook has logged it already).
fn guarded<F: FnOnce(&Ctx)>(raw: *mut sys::cmdhost_ctx, f: F) -> c_int {
    if raw.is_null() {
        return -1;
    }
    let state = unsafe {
        match (*(*raw).api).ctx_state {
            Some(s) => s(raw) as *const Generation,
            None => ptr::null(),
        }
    };
    if state.is_null() {
        return -1;
    }
    let ctx = Ctx { raw, gen: state };
    let prev = CURRENT_CTX.with(|c| c.replace(raw));
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(&ctx)));
    CURRENT_CTX.with(|c| c.set(prev));
    match r {
        Ok(()) => 0,
        Err(p) => {
            ctx.fail_raw(500, "plugin_panicked", &format!("the plugin panicked: {}", panic_message(&*p)));
            0
        }
    }
}

unsafe extern "C" fn validate_tramp(raw: *mut sys::cmdhost_ctx) -> c_int {
    let mut refused = false;
    let rc = guarded(raw, |ctx| {
        let entry = match ctx.gen().commands.get(ctx.command()) {
            Some(e) => e,
            None => return,
        };
        if let Some(v) = entry.validate {
            if let Err(reply) = v(ctx) {
                refused = true;
                match reply {
                    Reply::Fail { .. } => ctx.finish(reply),
                    Reply::Json { .. } => {
                        ctx.fail_raw(400, "invalid_payload", "payload rejected by validate")
                    }
                }
            }
        }
    });
    if refused || rc != 0 {
        -1
    } else {
        0
    }
}

unsafe extern "C" fn execute_tramp(raw: *mut sys::cmdhost_ctx) -> c_int {
    guarded(raw, |ctx| {
        let entry = match ctx.gen().commands.get(ctx.command()) {
            Some(e) => e,
            None => {
                ctx.fail_raw(500, "command_failed", "no handler for this command");
                return;
            }
        };
        let reply = (entry.execute)(ctx);
        ctx.finish(reply);
    })
}

unsafe extern "C" fn fini_tramp(state: *mut c_void) {
    if state.is_null() {
        return;
    }
    // The state's Drop is the plugin's fini; a panic in it is swallowed.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        drop(Box::from_raw(state as *mut Generation));
    }));
    // Free the panic hook registration installed: this generation's
    // copy of std goes away with it, and nothing else would.
    drop(panic::take_hook());
}

/// A JSON log line on stderr for a panic outside any call or
/// registration (a thread the plugin started itself).
fn stderr_line(plugin: &str, message: &str) {
    use std::io::Write;
    let line = format!(
        "{{\"level\":\"error\",\"message\":{},\"plugin\":{}}}\n",
        json::quote(message),
        json::quote(plugin)
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn install_panic_hook(plugin: String) {
    panic::set_hook(Box::new(move |info| {
        let mut msg = format!("the plugin panicked: {}", panic_message(info.payload()));
        if let Some(l) = info.location() {
            msg.push_str(&format!(" (at {}:{})", l.file(), l.line()));
        }
        let ctx = CURRENT_CTX.with(|c| c.get());
        let reg = CURRENT_REG.with(|c| c.get());
        let m = cstring(&msg);
        unsafe {
            if !ctx.is_null() {
                if let Some(f) = (*(*ctx).api).ctx_log {
                    f(ctx, sys::CMDHOST_LOG_ERROR, m.as_ptr());
                    return;
                }
            }
            if !reg.is_null() {
                if let Some(f) = (*(*reg).api).reg_log {
                    f(reg, sys::CMDHOST_LOG_ERROR, m.as_ptr());
                    return;
                }
            }
        }
        stderr_line(&plugin, &msg);
    }));
}

/// The registration trampoline [`plugin!`] exports; not for direct use.
#[doc(hidden)]
pub unsafe fn __register(
    raw: *mut sys::cmdhost_registrar,
    f: fn(&mut Registrar) -> Result<(), String>,
) -> c_int {
    if raw.is_null() || (*raw).api.is_null() {
        return -1;
    }
    let api = &*(*raw).api;
    let need = memoffset_end_client_id_text();
    if api.size < need {
        if let Some(e) = api.reg_error {
            let m = cstring("this plugin needs a daemon with ABI 1.1 (ctx_respond_text)");
            e(raw, m.as_ptr());
        }
        return -1;
    }
    let name = match api.reg_plugin_name {
        Some(n) => borrowed_str(n(raw)).unwrap_or("").to_string(),
        None => String::new(),
    };
    install_panic_hook(name.clone());
    let mut reg = Registrar {
        raw,
        gen: Box::new(Generation {
            name,
            state: None,
            commands: HashMap::new(),
            strings: Vec::new(),
            fields: Vec::new(),
        }),
    };
    if cfg!(panic = "abort") {
        reg.log(
            Level::Warn,
            "built with panic = \"abort\": a panic in this plugin ends the process that hosts it",
        );
    }
    let prev = CURRENT_REG.with(|c| c.replace(raw));
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(&mut reg)));
    CURRENT_REG.with(|c| c.set(prev));
    let err = match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(p) => Some(format!("registration panicked: {}", panic_message(&*p))),
    };
    // The daemon owns the generation from here: fini drops it, also
    // when registration failed.
    let gen = Box::into_raw(reg.gen);
    if let Some(set) = api.reg_set_state {
        set(raw, gen as *mut c_void, Some(fini_tramp));
    } else {
        fini_tramp(gen as *mut c_void);
    }
    match err {
        None => 0,
        Some(e) => {
            if let Some(report) = api.reg_error {
                let m = cstring(&e);
                report(raw, m.as_ptr());
            }
            -1
        }
    }
}

/// Where the last 1.1 entry ends: the table must be at least this big.
fn memoffset_end_client_id_text() -> usize {
    let t = std::mem::MaybeUninit::<sys::cmdhost_api>::uninit();
    let base = t.as_ptr() as usize;
    let field = unsafe { ptr::addr_of!((*t.as_ptr()).ctx_client_id_text) } as usize;
    field - base + std::mem::size_of::<sys::cmdhost_fini_fn>()
}

/// Export the plugin's descriptor: `plugin!("name", register)` takes the
/// version from Cargo (`CARGO_PKG_VERSION`); `plugin!("name", "1.2.3",
/// register)` gives it.  Use it once, in the crate root of a `cdylib`.
/// `register` is `fn(&mut Registrar) -> Result<(), String>`.
#[macro_export]
macro_rules! plugin {
    ($name:expr, $register:path) => {
        $crate::plugin!($name, env!("CARGO_PKG_VERSION"), $register);
    };
    ($name:expr, $version:expr, $register:path) => {
        #[allow(non_upper_case_globals)]
        #[no_mangle]
        pub static cmdhost_plugin: $crate::sys::cmdhost_plugin_desc = $crate::sys::cmdhost_plugin_desc {
            magic: $crate::sys::CMDHOST_MAGIC,
            abi_major: $crate::sys::CMDHOST_ABI_MAJOR,
            abi_minor: $crate::sys::CMDHOST_ABI_MINOR,
            name: concat!($name, "\0").as_ptr() as *const ::std::os::raw::c_char,
            version: concat!($version, "\0").as_ptr() as *const ::std::os::raw::c_char,
            register_fn: Some(__cmdhost_register),
        };

        unsafe extern "C" fn __cmdhost_register(
            reg: *mut $crate::sys::cmdhost_registrar,
        ) -> ::std::os::raw::c_int {
            $crate::__register(reg, $register)
        }
    };
}
