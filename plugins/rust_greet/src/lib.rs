//! rust_greet - the example Rust plugin: the whole plugin contract in a
//! few dozen lines of safe Rust, without json-c.
//!
//! - `rust.greet` {"name": string, "times"?: integer}: declared fields
//!   (the daemon answers 400 for a missing or mistyped one), validate
//!   refuses an empty name or times outside 1..=5, execute answers
//!   {"greeting", "calls", "variant"} with the `[plugin:rust_greet]
//!   greeting` config value and a call counter kept in the state.
//! - `rust.panic` {"message"?: string} panics: the daemon answers 500
//!   plugin_panicked and keeps serving.
//! - `rust.whoami` answers the request's context.
//! - `rust.reply` {"text": string, "status"?: integer} answers `text` as
//!   the JSON body with `status` (default 200): the daemon checks the
//!   text strictly (500 bad_reply naming the plugin when it is not
//!   JSON) and refuses a status that is not 2xx (500 command_failed).
//!
//! - With the `jsonc` feature, `rust.jsonc` {"name": string} answers
//!   {"hello": name, "via": "json-c"} through json-c objects.
//!
//! `[plugin:rust_greet] fini_file = PATH`: the state's Drop (the
//! generation's fini) appends a line there, so a test can see it run;
//! `panic_at_register = yes` panics in registration (the load fails
//! with the message, the daemon lives).

use cmdhost::json::{self, Object, Value};
use cmdhost::{Ctx, FieldType, Registrar, Reply};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

const VARIANT: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

struct State {
    greeting: String,
    calls: AtomicU64,
    fini_file: Option<String>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(path) = &self.fini_file {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "fini {} after {} calls", VARIANT, self.calls.load(Ordering::Relaxed));
            }
        }
    }
}

fn greet_validate(ctx: &Ctx) -> Result<(), Reply> {
    let p = ctx.payload();
    if p.get("name").and_then(Value::as_str) == Some("") {
        return Err(Reply::fail(400, "invalid_payload", "field 'name' must not be empty"));
    }
    match p.get("times").and_then(Value::as_i64) {
        Some(t) if !(1..=5).contains(&t) => Err(Reply::fail(400, "invalid_payload", "field 'times' must be 1..5")),
        _ => Ok(()),
    }
}

fn greet(ctx: &Ctx) -> Reply {
    let st = match ctx.state::<State>() {
        Some(s) => s,
        None => return Reply::fail(500, "no_state", "state missing"),
    };
    let p = ctx.payload();
    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
    let times = p.get("times").and_then(Value::as_i64).unwrap_or(1) as usize;
    let calls = st.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let text = vec![format!("{}, {}", st.greeting, name); times].join(" ");
    ctx.info(&format!("greeted {}", name));
    Reply::ok(Object::new().str("greeting", &text).int("calls", calls as i64).str("variant", VARIANT).finish())
}

fn panic_now(ctx: &Ctx) -> Reply {
    let p = ctx.payload();
    let msg = p.get("message").and_then(Value::as_str).unwrap_or("on purpose").to_string();
    panic!("rust.panic: {}", msg);
}

fn whoami(ctx: &Ctx) -> Reply {
    Reply::ok(
        Object::new()
            .str("request_id", ctx.request_id())
            .str("command", ctx.command())
            .raw("client_id", ctx.client_id().unwrap_or("null"))
            .bool("has_time", ctx.time_left_ms() > 0)
            .raw("payload", ctx.payload_text())
            .str("variant", VARIANT)
            .finish(),
    )
}

fn reply_text(ctx: &Ctx) -> Reply {
    let p = ctx.payload();
    let status = p.get("status").and_then(Value::as_i64).unwrap_or(200);
    let text = p.get("text").and_then(Value::as_str).unwrap_or("null");
    Reply::respond(status.clamp(0, 999) as u16, text)
}

/// The payload and the reply as json-c objects (the crate's `json-c`
/// feature): the payload is borrowed for the call; the body made here
/// is handed to the daemon by `respond_json_c`.
#[cfg(feature = "jsonc")]
fn jsonc_greet(ctx: &Ctx) -> Reply {
    use cmdhost::sys::jsonc::*;
    use std::ffi::{CStr, CString};
    use std::ptr;

    let key = |s: &str| CString::new(s).unwrap_or_default();
    unsafe {
        let mut name = ptr::null_mut();
        let (k_name, k_hello, k_via, jc) = (key("name"), key("hello"), key("via"), key("json-c"));
        json_object_object_get_ex(ctx.payload_json_c(), k_name.as_ptr(), &mut name);
        let text = json_object_get_string(name);
        let body = json_object_new_object();
        if body.is_null() || text.is_null() {
            json_object_put(body);
            return Reply::fail(500, "no_object", "json-c made no object");
        }
        let name = CStr::from_ptr(text).to_owned();
        json_object_object_add(body, k_hello.as_ptr(), json_object_new_string(name.as_ptr()));
        json_object_object_add(body, k_via.as_ptr(), json_object_new_string(jc.as_ptr()));
        ctx.respond_json_c(200, body);
    }
    // Ignored: the call finished above.
    Reply::ok("null")
}

fn register(reg: &mut Registrar) -> Result<(), String> {
    let greeting = reg.config("greeting").unwrap_or_else(|| "hello".to_string());
    let fini_file = reg.config("fini_file");
    if reg.config("panic_at_register").as_deref() == Some("yes") {
        panic!("asked to panic at registration");
    }
    reg.log(cmdhost::Level::Info, &format!("registering, greeting {}", json::quote(&greeting)));
    reg.set_state(State { greeting, calls: AtomicU64::new(0), fini_file });
    reg.command("rust.greet")
        .summary("Greet someone by name, from Rust")
        .field("name", FieldType::String, true)
        .field("times", FieldType::Integer, false)
        .validate(greet_validate)
        .execute(greet)
        .add()?;
    reg.command("rust.panic").summary("Panic on purpose").execute(panic_now).add()?;
    reg.command("rust.whoami").summary("The request's context").execute(whoami).add()?;
    reg.command("rust.reply")
        .summary("Answer the JSON text given, with a status")
        .field("text", FieldType::String, true)
        .field("status", FieldType::Integer, false)
        .execute(reply_text)
        .add()?;
    #[cfg(feature = "jsonc")]
    reg.command("rust.jsonc")
        .summary("Greet through json-c objects")
        .field("name", FieldType::String, true)
        .execute(jsonc_greet)
        .add()?;
    Ok(())
}

cmdhost::plugin!("rust_greet", register);
