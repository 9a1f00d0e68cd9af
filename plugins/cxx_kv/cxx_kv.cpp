/*
 * cxx_kv.cpp - an in-memory key-value store, written in C++17: kv.put,
 * kv.get, kv.del.  It shows what a C++ plugin needs and no more: the
 * header's CMDHOST_PLUGIN() gives the descriptor C linkage (the one
 * extern "C" the daemon relies on); the callbacks stay static C++
 * functions; no exception leaves a callback; no global object with a
 * constructor (state lives in a heap object made at registration and
 * deleted by fini).
 *
 * [plugin:cxx_kv] max_keys = N (default 1000) bounds the store.
 */
#include <cmdhost/plugin.h>

#include <cerrno>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

namespace {

/* One generation's store.  Calls run on several threads at once, so the
 * map is guarded by a mutex.  Values are kept as JSON text: json-c
 * objects must not outlive the call that made them. */
struct kv_store {
	std::mutex lock;
	std::unordered_map<std::string, std::string> map;
	size_t max_keys = 1000;
};

void
kv_fini(void *state)
{
	delete static_cast<kv_store *>(state);
}

/* The payload's "key" (declared required, so the daemon checked it). */
std::string
payload_key(cmdhost_ctx *ctx)
{
	json_object *key = nullptr;

	json_object_object_get_ex(cmdhost_payload(ctx), "key", &key);
	return json_object_get_string(key);
}

/* A body {"key": key}, plus "value" parsed from value_text when given.
 * Returns a new object (one reference) or nullptr. */
json_object *
key_body(const std::string &key, const std::string *value_text)
{
	json_object *body = json_object_new_object();

	if (body == nullptr)
		return nullptr;
	json_object_object_add(body, "key",
	    json_object_new_string_len(key.data(), (int)key.size()));
	if (value_text != nullptr)
		json_object_object_add(body, "value",
		    json_tokener_parse(value_text->c_str()));
	return body;
}

/* Run f, turning any exception into a 500: none may reach the daemon. */
template <typename F>
int
guarded(cmdhost_ctx *ctx, F f)
{
	try {
		return f();
	} catch (const std::bad_alloc &) {
		cmdhost_fail(ctx, 503, "out_of_memory", "out of memory");
	} catch (const std::exception &e) {
		cmdhost_fail(ctx, 500, "internal_error", e.what());
	} catch (...) {
		cmdhost_fail(ctx, 500, "internal_error", "unknown exception");
	}
	return 0;
}

int
kv_put(cmdhost_ctx *ctx)
{
	return guarded(ctx, [ctx]() {
		auto *kv = static_cast<kv_store *>(cmdhost_state(ctx));
		std::string key = payload_key(ctx);
		json_object *value = nullptr;
		bool created;

		json_object_object_get_ex(cmdhost_payload(ctx), "value",
		    &value);
		std::string text = json_object_to_json_string_ext(value,
		    JSON_C_TO_STRING_PLAIN);
		{
			std::lock_guard<std::mutex> g(kv->lock);
			auto it = kv->map.find(key);

			created = it == kv->map.end();
			if (created && kv->map.size() >= kv->max_keys) {
				cmdhost_failf(ctx, 507, "store_full",
				    "the store holds %zu keys, its max_keys",
				    kv->map.size());
				return 0;
			}
			kv->map[key] = text;
		}
		cmdhost_log(ctx, CMDHOST_LOG_DEBUG, "%s key %s",
		    created ? "created" : "replaced", key.c_str());
		return cmdhost_respond(ctx, created ? 201 : 200,
		    key_body(key, &text)) == 0 ? 0 : -1;
	});
}

int
kv_get(cmdhost_ctx *ctx)
{
	return guarded(ctx, [ctx]() {
		auto *kv = static_cast<kv_store *>(cmdhost_state(ctx));
		std::string key = payload_key(ctx), text;

		{
			std::lock_guard<std::mutex> g(kv->lock);
			auto it = kv->map.find(key);

			if (it == kv->map.end()) {
				cmdhost_failf(ctx, 404, "key_not_found",
				    "no key '%.200s'", key.c_str());
				return 0;
			}
			text = it->second;
		}
		return cmdhost_ok(ctx, key_body(key, &text)) == 0 ? 0 : -1;
	});
}

int
kv_del(cmdhost_ctx *ctx)
{
	return guarded(ctx, [ctx]() {
		auto *kv = static_cast<kv_store *>(cmdhost_state(ctx));
		std::string key = payload_key(ctx);
		size_t n;

		{
			std::lock_guard<std::mutex> g(kv->lock);
			n = kv->map.erase(key);
		}
		if (n == 0) {
			cmdhost_failf(ctx, 404, "key_not_found",
			    "no key '%.200s'", key.c_str());
			return 0;
		}
		return cmdhost_ok(ctx, key_body(key, nullptr)) == 0 ? 0 : -1;
	});
}

/* "value" may be any JSON, null included... except that a null member
 * counts as absent, so a required "value" refuses null: store false or
 * {} instead. */
const cmdhost_field put_fields[] = {
	{ "key", CMDHOST_STRING, 1 },
	{ "value", CMDHOST_ANY, 1 },
	{ nullptr, 0, 0 }
};

const cmdhost_field key_fields[] = {
	{ "key", CMDHOST_STRING, 1 },
	{ nullptr, 0, 0 }
};

const cmdhost_command commands[] = {
	{ "kv.put", "Store a JSON value under a key (201 when new)",
	    put_fields, nullptr, kv_put, 0 },
	{ "kv.get", "Read the value of a key (404 key_not_found)",
	    key_fields, nullptr, kv_get, 0 },
	{ "kv.del", "Remove a key (404 key_not_found)",
	    key_fields, nullptr, kv_del, 0 },
};

int
kv_register(cmdhost_registrar *reg)
{
	kv_store *kv = new (std::nothrow) kv_store;
	const char *max;

	if (kv == nullptr) {
		cmdhost_reg_error(reg, "out of memory");
		return -1;
	}
	/* From here on the daemon calls kv_fini, also if we fail below. */
	cmdhost_set_state(reg, kv, kv_fini);
	if ((max = cmdhost_config(reg, "max_keys")) != nullptr) {
		char *end;
		long long n;

		errno = 0;
		n = std::strtoll(max, &end, 10);
		if (*max == '\0' || *end != '\0' || errno != 0 || n < 1) {
			cmdhost_reg_error(reg, "max_keys must be a positive "
			    "integer, not '%s'", max);
			return -1;
		}
		kv->max_keys = (size_t)n;
	}
	for (const cmdhost_command &c : commands)
		if (cmdhost_add_command(reg, &c) != 0)
			return -1;
	cmdhost_reg_log(reg, CMDHOST_LOG_INFO, "max_keys %zu", kv->max_keys);
	return 0;
}

} /* namespace */

CMDHOST_PLUGIN("cxx_kv", "1.0.0", kv_register);
