//! Web globals boa_runtime lacks: `crypto` (`getRandomValues`,
//! `randomUUID`, `subtle.digest`) and `performance` (`now`, `timeOrigin`).
//!
//! Randomness is asked of the kernel on every call (`getrandom(2)`, which the
//! seccomp filter leaves open): no generator state lives in the process, so
//! workers forked from one zygote, and checkpoints forked from one worker,
//! never draw the same numbers.
//!
//! `performance` counts from a time origin kept per thread. [`install`] sets
//! it, but the engine is prepared once in the zygote and forked into
//! sessions, so a session calls [`reset_time_origin`] when it starts: without
//! that its clock would count from the zygote's start.

use std::cell::Cell;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use boa_engine::builtins::typed_array::TypedArrayKind;
use boa_engine::object::builtins::{
    js_typed_array_from_kind, JsArrayBuffer, JsDataView, JsPromise, JsSharedArrayBuffer, JsTypedArray,
};
use boa_engine::object::{FunctionObjectBuilder, ObjectInitializer};
use boa_engine::property::{Attribute, PropertyDescriptor};
use boa_engine::{
    js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsString, JsSymbol, JsValue,
    NativeFunction, Source,
};
use sha2::Digest as _;

/// The most bytes one `getRandomValues` call fills (the Web Crypto limit).
const MAX_RANDOM_BYTES: usize = 65_536;

/// The legacy DOMException code of a `QuotaExceededError`.
const QUOTA_EXCEEDED_CODE: u32 = 22;
/// The legacy DOMException code of a `NotSupportedError`.
const NOT_SUPPORTED_CODE: u32 = 9;

/// When `performance`'s clock started, on both clocks: the monotonic one
/// `now()` counts on, and the wall clock `timeOrigin` reports.
#[derive(Clone, Copy)]
struct TimeOrigin {
    instant: Instant,
    /// Milliseconds since the Unix epoch.
    epoch_ms: f64,
}

impl TimeOrigin {
    fn now() -> Self {
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64() * 1000.0);
        Self { instant: Instant::now(), epoch_ms }
    }
}

thread_local! {
    /// Per thread rather than per process so that tests, each on its own
    /// thread, keep their own; a fork copies the forking thread's.
    static TIME_ORIGIN: Cell<Option<TimeOrigin>> = const { Cell::new(None) };
}

/// Restarts `performance`'s clock: `performance.now()` counts from here and
/// `performance.timeOrigin` reports this moment. Call it when a session
/// starts in a worker forked from the zygote (where [`install`] ran).
pub fn reset_time_origin() {
    TIME_ORIGIN.with(|origin| origin.set(Some(TimeOrigin::now())));
}

/// The origin set last on this thread (set now if none was).
fn time_origin() -> TimeOrigin {
    TIME_ORIGIN.with(|origin| {
        origin.get().unwrap_or_else(|| {
            let now = TimeOrigin::now();
            origin.set(Some(now));
            now
        })
    })
}

/// Installs `crypto` (getRandomValues, randomUUID, subtle.digest) and
/// `performance` (now, timeOrigin) as globals: writable, configurable, not
/// enumerable, like the web's. Also restarts `performance`'s clock (see
/// [`reset_time_origin`]). Calling it again replaces both objects.
pub fn install(context: &mut Context) -> JsResult<()> {
    reset_time_origin();
    let subtle = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(digest), js_string!("digest"), 2)
        .property(JsSymbol::to_string_tag(), js_string!("SubtleCrypto"), Attribute::CONFIGURABLE)
        .build();
    let crypto = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(get_random_values), js_string!("getRandomValues"), 1)
        .function(NativeFunction::from_fn_ptr(random_uuid), js_string!("randomUUID"), 0)
        .property(js_string!("subtle"), subtle, Attribute::CONFIGURABLE)
        .property(JsSymbol::to_string_tag(), js_string!("Crypto"), Attribute::CONFIGURABLE)
        .build();
    let time_origin_getter = FunctionObjectBuilder::new(context.realm(), NativeFunction::from_fn_ptr(time_origin_ms))
        .name(js_string!("get timeOrigin"))
        .length(0)
        .build();
    let performance = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(now), js_string!("now"), 0)
        .accessor(js_string!("timeOrigin"), Some(time_origin_getter), None, Attribute::CONFIGURABLE)
        .property(JsSymbol::to_string_tag(), js_string!("Performance"), Attribute::CONFIGURABLE)
        .build();
    let global = Attribute::WRITABLE | Attribute::CONFIGURABLE;
    context.register_global_property(js_string!("crypto"), crypto, global)?;
    context.register_global_property(js_string!("performance"), performance, global)?;
    context.eval(Source::from_bytes(URL_SEARCH_PARAMS).with_path(Path::new("<vm-system:url>")))?;
    Ok(())
}

/// `URLSearchParams` and `URL.prototype.searchParams`, which boa_runtime's
/// `URL` lacks, in JavaScript.
const URL_SEARCH_PARAMS: &str = include_str!("js/url_search_params.js");

/// `crypto.getRandomValues(array)`: fills an integer typed array with random
/// bytes in place and returns it.
fn get_random_values(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let value = args.get_or_undefined(0);
    let Some((array, kind)) = integer_typed_array(value) else {
        return Err(JsNativeError::typ()
            .with_message("crypto.getRandomValues: the argument must be an integer TypedArray (not a Float one)")
            .into());
    };
    let byte_length = array.byte_length(context)?;
    if byte_length > MAX_RANDOM_BYTES {
        let message = format!(
            "crypto.getRandomValues: the array is {byte_length} bytes long, more than the {MAX_RANDOM_BYTES} bytes \
             one call may fill"
        );
        return Err(dom_exception("QuotaExceededError", QUOTA_EXCEEDED_CODE, message, context));
    }
    // Filled through a fresh view of the same kind, so views of a
    // SharedArrayBuffer and views at an offset need no special case.
    let random = JsArrayBuffer::new(byte_length, context)?;
    {
        let mut bytes = random
            .data_mut()
            .ok_or_else(|| JsNativeError::error().with_message("crypto.getRandomValues: a new buffer is detached"))?;
        fill_random(&mut bytes)?;
    }
    let source = js_typed_array_from_kind(kind, random, context)?;
    array.set_values(source, Some(0), context)?;
    Ok(value.clone())
}

/// `value` as a typed array of integers, with its kind.
fn integer_typed_array(value: &JsValue) -> Option<(JsTypedArray, TypedArrayKind)> {
    let array = JsTypedArray::from_object(value.as_object()?).ok()?;
    let kind = array.kind()?;
    let integers = matches!(
        kind,
        TypedArrayKind::Int8
            | TypedArrayKind::Uint8
            | TypedArrayKind::Uint8Clamped
            | TypedArrayKind::Int16
            | TypedArrayKind::Uint16
            | TypedArrayKind::Int32
            | TypedArrayKind::Uint32
            | TypedArrayKind::BigInt64
            | TypedArrayKind::BigUint64
    );
    integers.then_some((array, kind))
}

/// `crypto.randomUUID()`: a version 4 UUID, lowercase.
fn random_uuid(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // the RFC 9562 variant
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        let _ = write!(text, "{byte:02x}");
    }
    Ok(JsString::from(text.as_str()).into())
}

/// Fills `bytes` from the kernel's random source.
fn fill_random(bytes: &mut [u8]) -> JsResult<()> {
    getrandom::getrandom(bytes).map_err(|err| {
        JsNativeError::error().with_message(format!("crypto: the system's random source failed: {err}")).into()
    })
}

/// The digests `crypto.subtle.digest` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The algorithm an `AlgorithmIdentifier` names: a string, or an object
    /// with a `name`, either in any case.
    fn parse(value: &JsValue, context: &mut Context) -> JsResult<Self> {
        let name = match value.as_object() {
            Some(object) => {
                let name = object.get(js_string!("name"), context)?;
                if name.is_undefined() {
                    return Err(JsNativeError::typ()
                        .with_message("crypto.subtle.digest: the algorithm object has no name")
                        .into());
                }
                name.to_string(context)?
            }
            None => value.to_string(context)?,
        };
        let name = name.to_std_string_escaped();
        match name.to_ascii_uppercase().as_str() {
            "SHA-1" => Ok(Self::Sha1),
            "SHA-256" => Ok(Self::Sha256),
            "SHA-384" => Ok(Self::Sha384),
            "SHA-512" => Ok(Self::Sha512),
            _ => {
                let message = format!(
                    "crypto.subtle.digest: unsupported algorithm '{name}' (SHA-1, SHA-256, SHA-384 and SHA-512 are)"
                );
                Err(dom_exception("NotSupportedError", NOT_SUPPORTED_CODE, message, context))
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// `crypto.subtle.digest(algorithm, data)`: a promise of the digest, as an
/// ArrayBuffer. Every error rejects the promise rather than throwing.
fn digest(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let hash = digest_of(args.get_or_undefined(0), args.get_or_undefined(1), context);
    let buffer = hash.and_then(|hash| array_buffer(&hash, context));
    JsPromise::from_result(buffer, context).map(Into::into)
}

fn digest_of(algorithm: &JsValue, data: &JsValue, context: &mut Context) -> JsResult<Vec<u8>> {
    let (buffer, range) = buffer_source(data, context)?;
    let algorithm = Algorithm::parse(algorithm, context)?;
    Ok(with_bytes(&buffer, range, |bytes| algorithm.hash(bytes)))
}

/// The buffer behind a `BufferSource` (an ArrayBuffer, a TypedArray or a
/// DataView) and the byte range it covers (all of it when `None`).
fn buffer_source(value: &JsValue, context: &mut Context) -> JsResult<(JsObject, Option<Range<usize>>)> {
    let not_a_source = || {
        JsError::from(
            JsNativeError::typ()
                .with_message("crypto.subtle.digest: the data must be an ArrayBuffer, a TypedArray or a DataView"),
        )
    };
    let object = value.as_object().ok_or_else(not_a_source)?;
    if is_buffer(&object) {
        return Ok((object, None));
    }
    let (buffer, offset, length) = if let Ok(array) = JsTypedArray::from_object(object.clone()) {
        (array.buffer(context)?, array.byte_offset(context)?, array.byte_length(context)?)
    } else if let Ok(view) = JsDataView::from_object(object) {
        let offset = usize::try_from(view.byte_offset(context)?).map_err(|_| not_a_source())?;
        let length = usize::try_from(view.byte_length(context)?).map_err(|_| not_a_source())?;
        (view.buffer(context)?, offset, length)
    } else {
        return Err(not_a_source());
    };
    let buffer = buffer.as_object().filter(is_buffer).ok_or_else(not_a_source)?;
    Ok((buffer, Some(offset..offset + length)))
}

fn is_buffer(object: &JsObject) -> bool {
    JsArrayBuffer::from_object(object.clone()).is_ok() || JsSharedArrayBuffer::from_object(object.clone()).is_ok()
}

/// Runs `f` on `range` of `buffer`'s bytes. A detached buffer, or a range
/// past its end, holds no bytes (as the Web IDL's "copy of the bytes" has it).
fn with_bytes<R>(buffer: &JsObject, range: Option<Range<usize>>, f: impl FnOnce(&[u8]) -> R) -> R {
    if let Ok(buffer) = JsArrayBuffer::from_object(buffer.clone()) {
        // Read in place: no copy of a large buffer.
        let data = buffer.data();
        return f(part(data.as_deref().unwrap_or_default(), range));
    }
    let bytes = JsSharedArrayBuffer::from_object(buffer.clone()).map(|shared| shared.to_vec()).unwrap_or_default();
    f(part(&bytes, range))
}

/// `range` of `bytes` (all of them when `None`), empty when out of bounds.
fn part(bytes: &[u8], range: Option<Range<usize>>) -> &[u8] {
    match range {
        Some(range) => bytes.get(range).unwrap_or_default(),
        None => bytes,
    }
}

/// A new ArrayBuffer holding `bytes`.
fn array_buffer(bytes: &[u8], context: &mut Context) -> JsResult<JsArrayBuffer> {
    let buffer = JsArrayBuffer::new(bytes.len(), context)?;
    buffer
        .data_mut()
        .ok_or_else(|| JsNativeError::error().with_message("crypto.subtle.digest: a new buffer is detached"))?
        .copy_from_slice(bytes);
    Ok(buffer)
}

/// A DOMException-like error: an `Error` whose `name` is `name` and whose
/// `code` is the legacy DOMException code, both not enumerable.
fn dom_exception(name: &str, code: u32, message: String, context: &mut Context) -> JsError {
    let object = JsNativeError::error().with_message(message).into_opaque(context);
    for (key, value) in [(js_string!("name"), JsValue::from(JsString::from(name))), (js_string!("code"), code.into())] {
        let property = PropertyDescriptor::builder().value(value).writable(true).enumerable(false).configurable(true);
        // A fresh ordinary object: defining its own property cannot fail.
        let _ = object.define_property_or_throw(key, property, context);
    }
    JsError::from_opaque(object.into())
}

/// `performance.now()`: milliseconds since the time origin, with
/// sub-millisecond precision.
fn now(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    Ok(JsValue::from(time_origin().instant.elapsed().as_secs_f64() * 1000.0))
}

/// The getter of `performance.timeOrigin`: the origin in milliseconds since
/// the Unix epoch.
fn time_origin_ms(_: &JsValue, _: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    Ok(JsValue::from(time_origin().epoch_ms))
}

#[cfg(test)]
mod tests {
    use boa_engine::Source;

    use super::*;

    fn context() -> Context {
        let mut context = Context::default();
        install(&mut context).expect("install");
        context
    }

    fn eval(context: &mut Context, code: &str) -> JsValue {
        match context.eval(Source::from_bytes(code)) {
            Ok(value) => value,
            Err(err) => panic!("{code}: {err}"),
        }
    }

    fn eval_string(context: &mut Context, code: &str) -> String {
        eval(context, code).to_string(context).expect("to_string").to_std_string_escaped()
    }

    fn eval_bool(context: &mut Context, code: &str) -> bool {
        eval(context, code).as_boolean().unwrap_or_else(|| panic!("{code}: not a boolean"))
    }

    /// Evaluates `promise` (an expression), runs the jobs and reports how it
    /// settled: the digest as hex, or `rejected <name>`.
    fn settle(context: &mut Context, promise: &str) -> String {
        eval(
            context,
            &format!(
                "globalThis.out = 'pending';
                 ({promise}).then(
                     buffer => {{ out = [...new Uint8Array(buffer)].map(b => b.toString(16).padStart(2, '0')).join(''); }},
                     err => {{ out = 'rejected ' + err.name + (err instanceof Error ? '' : ' (not an Error)'); }});"
            ),
        );
        context.run_jobs().expect("run_jobs");
        eval_string(context, "out")
    }

    #[test]
    fn get_random_values_fills_the_array_in_place_and_returns_it() {
        let context = &mut context();
        assert!(eval_bool(
            context,
            "const a = new Uint8Array(64); const r = crypto.getRandomValues(a); r === a && a.some(x => x !== 0)"
        ));
        // Every integer kind, at an offset into its buffer: only the view's bytes change.
        for kind in [
            "Int8Array",
            "Uint8Array",
            "Uint8ClampedArray",
            "Int16Array",
            "Uint16Array",
            "Int32Array",
            "Uint32Array",
            "BigInt64Array",
            "BigUint64Array",
        ] {
            let code = format!(
                "(() => {{
                    const whole = new Uint8Array(96);
                    const view = new {kind}(whole.buffer, 16, 64 / {kind}.BYTES_PER_ELEMENT);
                    return crypto.getRandomValues(view) === view
                        && whole.subarray(0, 16).every(x => x === 0)
                        && whole.subarray(80).every(x => x === 0)
                        && whole.subarray(16, 80).some(x => x !== 0);
                }})()"
            );
            assert!(eval_bool(context, &code), "{kind}");
        }
        assert!(eval_bool(context, "crypto.getRandomValues(new Uint8Array(0)).length === 0"));
        assert!(eval_bool(
            context,
            "const s = new Uint8Array(new SharedArrayBuffer(64)); crypto.getRandomValues(s) === s && s.some(x => x !== 0)"
        ));
    }

    #[test]
    fn get_random_values_refuses_more_than_65536_bytes() {
        let context = &mut context();
        assert!(eval_bool(context, "crypto.getRandomValues(new Uint8Array(65536)).length === 65536"));
        for array in ["new Uint8Array(65537)", "new Uint32Array(16385)", "new BigUint64Array(8193)"] {
            let name = eval_string(
                context,
                &format!(
                    "try {{ crypto.getRandomValues({array}); 'no error' }}
                     catch (e) {{ (e instanceof Error) + ' ' + e.name + ' ' + e.code }}"
                ),
            );
            assert_eq!(name, "true QuotaExceededError 22", "{array}");
        }
    }

    #[test]
    fn get_random_values_refuses_float_arrays_and_other_values_with_a_type_error() {
        let context = &mut context();
        for value in [
            "new Float32Array(4)",
            "new Float64Array(4)",
            "[1, 2]",
            "new ArrayBuffer(4)",
            "new DataView(new ArrayBuffer(4))",
        ] {
            let caught = eval_string(
                context,
                &format!("try {{ crypto.getRandomValues({value}); 'no error' }} catch (e) {{ e.constructor.name }}"),
            );
            assert_eq!(caught, "TypeError", "{value}");
        }
        let caught =
            eval_string(context, "try { crypto.getRandomValues(); 'no error' } catch (e) { e.constructor.name }");
        assert_eq!(caught, "TypeError");
    }

    #[test]
    fn random_uuid_is_a_lowercase_version_4_uuid_and_new_each_time() {
        let context = &mut context();
        let pattern = "/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/";
        for _ in 0..32 {
            assert!(eval_bool(context, &format!("{pattern}.test(crypto.randomUUID())")));
        }
        assert!(eval_bool(context, "crypto.randomUUID() !== crypto.randomUUID()"));
    }

    #[test]
    fn digest_of_abc_matches_the_known_hashes() {
        let context = &mut context();
        let cases = [
            ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            ("SHA-256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "SHA-384",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                "SHA-512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algorithm, hex) in cases {
            let lower = algorithm.to_lowercase();
            for promise in [
                format!("crypto.subtle.digest('{algorithm}', new Uint8Array([97, 98, 99]))"),
                format!("crypto.subtle.digest({{ name: '{lower}' }}, new Uint8Array([97, 98, 99]).buffer)"),
                format!(
                    "crypto.subtle.digest('{lower}', new DataView(new Uint8Array([0, 97, 98, 99, 0]).buffer, 1, 3))"
                ),
                format!("crypto.subtle.digest('{algorithm}', new Uint8Array([0, 97, 98, 99, 0]).subarray(1, 4))"),
            ] {
                assert_eq!(settle(context, &promise), hex, "{promise}");
            }
        }
        assert!(eval_bool(context, "crypto.subtle.digest('SHA-256', new Uint8Array(0)) instanceof Promise"));
        assert_eq!(
            settle(context, "crypto.subtle.digest('SHA-256', new ArrayBuffer(0))"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digest_rejects_unknown_algorithms_and_bad_data() {
        let context = &mut context();
        let data = "new Uint8Array([97, 98, 99])";
        assert_eq!(settle(context, &format!("crypto.subtle.digest('MD5', {data})")), "rejected NotSupportedError");
        assert_eq!(
            settle(context, &format!("crypto.subtle.digest({{ name: 'SHA-3' }}, {data})")),
            "rejected NotSupportedError"
        );
        assert_eq!(settle(context, &format!("crypto.subtle.digest({{}}, {data})")), "rejected TypeError");
        assert_eq!(settle(context, "crypto.subtle.digest('SHA-256', 'abc')"), "rejected TypeError");
        assert_eq!(settle(context, "crypto.subtle.digest('SHA-256', [97, 98, 99])"), "rejected TypeError");
        assert_eq!(settle(context, "crypto.subtle.digest('SHA-256')"), "rejected TypeError");
    }

    #[test]
    fn performance_now_counts_up_from_the_time_origin() {
        let context = &mut context();
        assert!(eval_bool(
            context,
            "const t0 = performance.now(); let spin = 0; while (performance.now() === t0) { spin++; }
             t0 >= 0 && t0 < 10000 && performance.now() > t0"
        ));
        assert!(eval_bool(context, "Math.abs(performance.timeOrigin + performance.now() - Date.now()) < 100"));
        assert!(eval_bool(context, "performance.timeOrigin > 1.6e12"));
    }

    #[test]
    fn reset_time_origin_restarts_the_clock() {
        let context = &mut context();
        let origin = eval(context, "performance.timeOrigin").as_number().expect("number");
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(eval_bool(context, "performance.now() >= 30"));
        reset_time_origin();
        assert!(eval_bool(context, "performance.now() < 30"));
        let reset = eval(context, "performance.timeOrigin").as_number().expect("number");
        assert!(reset - origin >= 30.0, "{origin} then {reset}");
    }

    #[test]
    fn globals_are_not_enumerable_and_carry_their_tags() {
        let context = &mut context();
        assert!(eval_bool(context, "!Object.keys(globalThis).includes('crypto')"));
        assert!(eval_bool(context, "!Object.keys(globalThis).includes('performance')"));
        assert_eq!(eval_string(context, "Object.prototype.toString.call(crypto)"), "[object Crypto]");
        assert_eq!(eval_string(context, "Object.prototype.toString.call(crypto.subtle)"), "[object SubtleCrypto]");
        assert_eq!(eval_string(context, "Object.prototype.toString.call(performance)"), "[object Performance]");
        assert_eq!(eval_string(context, "typeof performance.timeOrigin"), "number");
    }
}
