//! How values and exceptions become `value` and `exception` events: a
//! Node-like REPL preview, the JSON form, and `TypeError: …` messages.
//! Part of the worker half; it reads boa values and knows nothing of hosts.

use boa_engine::builtins::error::Error;
use boa_engine::builtins::map::ordered_map::OrderedMap;
use boa_engine::builtins::promise::PromiseState;
use boa_engine::builtins::set::ordered_set::OrderedSet;
use boa_engine::error::{EngineError, RuntimeLimitError};
use boa_engine::object::builtins::JsPromise;
use boa_engine::object::builtins::JsRegExp;
use boa_engine::property::{DescriptorKind, PropertyDescriptor, PropertyKey};
use boa_engine::{js_string, Context, JsError, JsObject, JsResult, JsString, JsValue, JsVariant};
use vm_domain::event::EventPayload;

/// Nested objects deeper than this print as `[Object]`, as in Node.
const MAX_DEPTH: usize = 2;
/// Arrays, maps, sets and objects show at most this many entries.
const MAX_ENTRIES: usize = 100;

/// The `type` of a value event: `typeof`, except `null` and `array`.
pub fn kind_of(value: &JsValue) -> &'static str {
    if value.is_null() {
        return "null";
    }
    if value.as_object().is_some_and(|o| o.is_array()) {
        return "array";
    }
    value.type_of()
}

/// The `value` event of a completion value. `stringify` is the realm's
/// original `JSON.stringify`; `max_bytes` caps the preview and the JSON form.
pub fn value_event(value: &JsValue, stringify: &JsObject, max_bytes: usize, context: &mut Context) -> EventPayload {
    EventPayload::Value {
        kind: kind_of(value).to_owned(),
        preview: clip(inspect(value, context), max_bytes),
        json: json_of(value, stringify, max_bytes, context),
    }
}

/// The JSON form of `value` as `JSON.stringify` gives it, or `None` when it
/// has none (undefined, functions, symbols, bigints, cycles, non-finite
/// numbers) or when it is longer than `max_bytes`.
pub fn json_of(
    value: &JsValue,
    stringify: &JsObject,
    max_bytes: usize,
    context: &mut Context,
) -> Option<serde_json::Value> {
    if value.as_number().is_some_and(|n| !n.is_finite()) {
        return None;
    }
    let text = stringify.call(&JsValue::undefined(), std::slice::from_ref(value), context).ok()?;
    let text = text.as_string()?.to_std_string_escaped();
    if text.len() > max_bytes {
        return None;
    }
    serde_json::from_str(&text).ok()
}

/// The `exception` event of an error that ended a job. `source` names the
/// script, for errors that carry no stack of their own.
pub fn exception_event(err: JsError, source: &str, max_bytes: usize, context: &mut Context) -> EventPayload {
    let (message, stack) = describe_error(err, source, context);
    EventPayload::Exception { message: clip(message, max_bytes), stack: clip(stack, max_bytes) }
}

/// The message (`TypeError: …`, or the thrown value) and stack of an error.
pub fn describe_error(err: JsError, source: &str, context: &mut Context) -> (String, String) {
    let fallback_stack = |message: &str| format!("{message}\n    at {source}");
    if let Some(engine) = err.as_engine() {
        let message = match engine {
            EngineError::RuntimeLimit(RuntimeLimitError::Recursion | RuntimeLimitError::StackSize) => {
                "RangeError: Maximum call stack size exceeded".to_owned()
            }
            EngineError::RuntimeLimit(RuntimeLimitError::LoopIteration) => {
                "RangeError: Maximum loop iterations exceeded".to_owned()
            }
            other => format!("InternalError: {other}"),
        };
        let rendered = err.to_string();
        let frames: Vec<&str> = rendered.lines().skip(1).collect();
        let stack =
            if frames.is_empty() { fallback_stack(&message) } else { format!("{message}\n{}", frames.join("\n")) };
        return (message, stack);
    }
    let thrown = match err.into_opaque(context) {
        Ok(thrown) => thrown,
        Err(err) => {
            let message = err.to_string();
            return (message.clone(), fallback_stack(&message));
        }
    };
    if let Some(error) = thrown.as_object().filter(|o| o.is::<Error>()) {
        let message = error_title(&error, context);
        let frames = error
            .get(js_string!("stack"), context)
            .ok()
            .and_then(|s| s.as_string().map(|s| s.to_std_string_escaped()))
            .filter(|s| !s.trim().is_empty());
        let stack = match frames {
            Some(frames) => format!("{message}\n{}", frames.trim_end()),
            None => fallback_stack(&message),
        };
        return (message, stack);
    }
    let message = match thrown.as_string() {
        Some(text) => text.to_std_string_escaped(),
        None => inspect(&thrown, context),
    };
    let stack = fallback_stack(&message);
    (message, stack)
}

/// `Name: message`, as `Error.prototype.toString` builds it.
fn error_title(error: &JsObject, context: &mut Context) -> String {
    let mut text_of = |key: JsString, default: &str| match error.get(key, context) {
        Ok(v) if v.is_undefined() => default.to_owned(),
        Ok(v) => v.to_string(context).map(|s| s.to_std_string_escaped()).unwrap_or_default(),
        Err(_) => default.to_owned(),
    };
    let name = text_of(js_string!("name"), "Error");
    let message = text_of(js_string!("message"), "");
    match (name.is_empty(), message.is_empty()) {
        (true, _) => message,
        (false, true) => name,
        (false, false) => format!("{name}: {message}"),
    }
}

/// Formats console arguments as Node's `util.format` does: a leading string
/// may hold `%s %d %i %f %j %o %O %c %%`; other arguments follow, separated
/// by spaces, strings as they are and everything else inspected.
pub fn format_console(args: &[JsValue], context: &mut Context) -> JsResult<String> {
    let mut out = String::new();
    let mut rest = args;
    if let Some(template) = args.first().and_then(JsValue::as_string) {
        let template = template.to_std_string_escaped();
        if args.len() == 1 {
            return Ok(template);
        }
        rest = &args[1..];
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            let spec = match (c, chars.peek().copied()) {
                ('%', Some(spec)) if spec == '%' || (!rest.is_empty() && "sdifjoOc".contains(spec)) => spec,
                _ => {
                    out.push(c);
                    continue;
                }
            };
            chars.next();
            if spec == '%' {
                out.push('%');
                continue;
            }
            let (arg, tail) = rest.split_first().expect("a specifier is only taken when an argument is left");
            rest = tail;
            match spec {
                's' => match arg.variant() {
                    JsVariant::String(s) => out.push_str(&s.to_std_string_escaped()),
                    JsVariant::Object(_) => out.push_str(&inspect(arg, context)),
                    _ => out.push_str(&arg.display().to_string()),
                },
                'd' | 'i' | 'f' => {
                    if arg.is_bigint() {
                        out.push_str(&arg.display().to_string());
                    } else {
                        let n = if arg.is_symbol() { f64::NAN } else { arg.to_number(context)? };
                        let n = if spec == 'i' { n.trunc() } else { n };
                        out.push_str(&JsValue::from(n).display().to_string());
                    }
                }
                'j' => {
                    let json = context.intrinsics().objects().json().get(js_string!("stringify"), context)?;
                    match json.as_callable().map(|f| f.call(&JsValue::undefined(), std::slice::from_ref(arg), context))
                    {
                        Some(Ok(text)) if text.is_string() => {
                            out.push_str(&text.to_string(context)?.to_std_string_escaped())
                        }
                        Some(Ok(_)) => out.push_str("undefined"),
                        Some(Err(_)) | None => out.push_str("[Circular]"),
                    }
                }
                'o' | 'O' => out.push_str(&inspect(arg, context)),
                _ => {}
            }
        }
    }
    for (i, arg) in rest.iter().enumerate() {
        if i > 0 || args.first().is_some_and(JsValue::is_string) {
            out.push(' ');
        }
        match arg.as_string() {
            Some(s) => out.push_str(&s.to_std_string_escaped()),
            None => out.push_str(&inspect(arg, context)),
        }
    }
    Ok(out)
}

/// Cuts `text` to at most `max_bytes` (on a character boundary) and says how
/// much was left out.
pub fn clip(text: String, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// A one-line, Node-like rendering of `value`: `'str'`, `[ 1, 2 ]`,
/// `{ a: 1, b: [Object] }`, `[Function: f]`. Own properties are read raw,
/// so getters and proxies never run; only error names and messages and
/// regexp sources may call back into JavaScript.
pub fn inspect(value: &JsValue, context: &mut Context) -> String {
    let mut out = String::new();
    Inspector { seen: Vec::new(), context }.value(value, 0, &mut out);
    out
}

struct Inspector<'c> {
    /// Objects being printed, outermost first, to spot cycles.
    seen: Vec<JsObject>,
    context: &'c mut Context,
}

impl Inspector<'_> {
    fn value(&mut self, value: &JsValue, depth: usize, out: &mut String) {
        match value.variant() {
            JsVariant::String(s) => out.push_str(&quote(&s.to_std_string_escaped())),
            JsVariant::Object(obj) => self.object(&obj, depth, out),
            _ => out.push_str(&value.display().to_string()),
        }
    }

    fn object(&mut self, obj: &JsObject, depth: usize, out: &mut String) {
        if self.seen.iter().any(|s| JsObject::equals(s, obj)) {
            out.push_str("[Circular]");
            return;
        }
        if obj.is_callable() {
            out.push_str(&JsValue::from(obj.clone()).display().to_string());
            return;
        }
        if obj.is::<Error>() {
            let title = error_title(obj, self.context);
            if depth == 0 {
                out.push_str(&title);
            } else {
                out.push_str(&format!("[{title}]"));
            }
            return;
        }
        if let Some(s) = obj.downcast_ref::<JsString>() {
            out.push_str(&format!("[String: {}]", quote(&s.to_std_string_escaped())));
            return;
        }
        if let Some(n) = obj.downcast_ref::<f64>() {
            out.push_str(&format!("[Number: {}]", JsValue::from(*n).display()));
            return;
        }
        if let Some(b) = obj.downcast_ref::<bool>() {
            out.push_str(&format!("[Boolean: {b}]"));
            return;
        }
        if let Ok(promise) = JsPromise::from_object(obj.clone()) {
            self.seen.push(obj.clone());
            out.push_str("Promise { ");
            match promise.state() {
                PromiseState::Pending => out.push_str("<pending>"),
                PromiseState::Fulfilled(v) => self.value(&v, depth + 1, out),
                PromiseState::Rejected(v) => {
                    out.push_str("<rejected> ");
                    self.value(&v, depth + 1, out);
                }
            }
            out.push_str(" }");
            self.seen.pop();
            return;
        }
        if let Some(entries) = map_entries(obj) {
            let prefix = format!("Map({})", entries.len());
            self.collection(obj, &prefix, "Map", capped(entries), depth, out);
            return;
        }
        if let Some(items) = set_items(obj) {
            let prefix = format!("Set({})", items.len());
            let entries = items.into_iter().map(|v| (None, Slot::Value(v))).collect();
            self.collection(obj, &prefix, "Set", capped(entries), depth, out);
            return;
        }
        if obj.is_array() {
            let prefix = match constructor_name(obj).as_deref() {
                None | Some("Array") => String::new(),
                Some(name) => format!("{name}({})", array_length(obj)),
            };
            self.collection(obj, &prefix, "Array", array_entries(obj), depth, out);
            return;
        }
        if let Ok(regexp) = JsRegExp::from_object(obj.clone()) {
            let text = regexp.to_string(self.context);
            out.push_str(&text.unwrap_or_else(|_| "/(?:)/".to_owned()));
            return;
        }
        if !obj.is_ordinary() {
            out.push_str(&JsValue::from(obj.clone()).display().to_string());
            return;
        }
        let (prefix, label) = match obj.prototype() {
            None => ("[Object: null prototype]".to_owned(), "Object: null prototype".to_owned()),
            Some(_) => match constructor_name(obj) {
                None => (String::new(), "Object".to_owned()),
                Some(name) if name == "Object" => (String::new(), name),
                Some(name) => (name.clone(), name),
            },
        };
        self.collection(obj, &prefix, &label, capped(own_entries(obj, false)), depth, out);
    }

    /// Prints `prefix { a, b }` or `prefix [ a, b ]` (with `... n more items`
    /// when entries were left out), or `[label]` when nested too deep.
    fn collection(
        &mut self,
        obj: &JsObject,
        prefix: &str,
        label: &str,
        (entries, more): (Vec<Entry>, usize),
        depth: usize,
        out: &mut String,
    ) {
        let (open, close) = if obj.is_array() { ('[', ']') } else { ('{', '}') };
        if !prefix.is_empty() {
            out.push_str(prefix);
            out.push(' ');
        }
        if entries.is_empty() && more == 0 {
            out.push(open);
            out.push(close);
            return;
        }
        if depth > MAX_DEPTH {
            if !prefix.is_empty() {
                out.truncate(out.len() - prefix.len() - 1);
            }
            out.push_str(&format!("[{label}]"));
            return;
        }
        self.seen.push(obj.clone());
        out.push(open);
        out.push(' ');
        for (i, (key, slot)) in entries.into_iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if let Some(key) = key {
                out.push_str(&key);
                out.push_str(": ");
            }
            match slot {
                Slot::Value(v) => self.value(&v, depth + 1, out),
                Slot::Pair(k, v) => {
                    self.value(&k, depth + 1, out);
                    out.push_str(" => ");
                    self.value(&v, depth + 1, out);
                }
                Slot::Text(text) => out.push_str(&text),
            }
        }
        if more > 0 {
            let s = if more == 1 { "" } else { "s" };
            out.push_str(&format!(", ... {more} more item{s}"));
        }
        out.push(' ');
        out.push(close);
        self.seen.pop();
    }
}

/// A collection entry: its key as printed (`None` for array elements and
/// map or set items) and what it holds.
type Entry = (Option<String>, Slot);

/// At most [`MAX_ENTRIES`] entries, and how many were left out.
fn capped(mut entries: Vec<Entry>) -> (Vec<Entry>, usize) {
    let more = entries.len().saturating_sub(MAX_ENTRIES);
    entries.truncate(MAX_ENTRIES);
    (entries, more)
}

/// One entry of a collection: a value, a map pair, or literal text such as
/// `[Getter]` or `<2 empty items>`.
enum Slot {
    Value(JsValue),
    Pair(JsValue, JsValue),
    Text(String),
}

fn map_entries(obj: &JsObject) -> Option<Vec<Entry>> {
    let map = obj.downcast_ref::<OrderedMap<JsValue>>()?;
    Some(map.iter().map(|(k, v)| (None, Slot::Pair(k.clone(), v.clone()))).collect())
}

fn set_items(obj: &JsObject) -> Option<Vec<JsValue>> {
    let set = obj.downcast_ref::<OrderedSet>()?;
    Some(set.iter().cloned().collect())
}

fn array_length(obj: &JsObject) -> u64 {
    obj.borrow()
        .properties()
        .get(&js_string!("length").into())
        .and_then(|d| d.value().and_then(JsValue::as_number))
        .map_or(0, |n| n as u64)
}

/// Up to [`MAX_ENTRIES`] elements (a run of holes is one `<n empty items>`
/// entry), then the other own enumerable properties; and how many elements
/// were left out.
fn array_entries(obj: &JsObject) -> (Vec<Entry>, usize) {
    let length = array_length(obj);
    let mut present: Vec<u32> =
        obj.borrow().properties().index_property_keys().filter(|&i| u64::from(i) < length).collect();
    present.sort_unstable();
    let mut entries = Vec::new();
    let mut next = 0u64;
    for index in present {
        if entries.len() >= MAX_ENTRIES {
            break;
        }
        if u64::from(index) > next {
            entries.push((None, empty_items(u64::from(index) - next)));
            next = u64::from(index);
            if entries.len() >= MAX_ENTRIES {
                break;
            }
        }
        let desc = obj.borrow().properties().get(&PropertyKey::from(index));
        entries.push((None, desc.map_or(Slot::Value(JsValue::undefined()), |d| slot_of(&d))));
        next = u64::from(index) + 1;
    }
    if entries.len() < MAX_ENTRIES && next < length {
        entries.push((None, empty_items(length - next)));
        next = length;
    }
    let more = usize::try_from(length - next).unwrap_or(usize::MAX);
    entries.extend(own_entries(obj, true));
    (entries, more)
}

fn empty_items(count: u64) -> Slot {
    Slot::Text(format!("<{count} empty item{}>", if count == 1 { "" } else { "s" }))
}

/// Own enumerable properties, read raw (getters are not called). Arrays
/// skip their index properties, which [`array_entries`] already printed.
fn own_entries(obj: &JsObject, skip_indices: bool) -> Vec<Entry> {
    let borrowed = obj.borrow();
    let properties = borrowed.properties();
    let mut keys: Vec<PropertyKey> = Vec::new();
    if !skip_indices {
        keys.extend(properties.index_property_keys().map(PropertyKey::from));
    }
    keys.extend(borrowed.shape().keys());
    let mut entries = Vec::new();
    for key in keys {
        if skip_indices && matches!(key, PropertyKey::Index(_)) {
            continue;
        }
        let Some(desc) = properties.get(&key) else {
            continue;
        };
        if desc.enumerable() != Some(true) {
            continue;
        }
        entries.push((Some(key_text(&key)), slot_of(&desc)));
    }
    entries
}

fn slot_of(desc: &PropertyDescriptor) -> Slot {
    match desc.kind() {
        DescriptorKind::Data { value, .. } => Slot::Value(value.clone().unwrap_or_default()),
        DescriptorKind::Accessor { get, set } => Slot::Text(
            match (is_function(get.as_ref()), is_function(set.as_ref())) {
                (true, true) => "[Getter/Setter]",
                (true, false) => "[Getter]",
                (false, true) => "[Setter]",
                (false, false) => "undefined",
            }
            .to_owned(),
        ),
        DescriptorKind::Generic => Slot::Value(JsValue::undefined()),
    }
}

fn is_function(accessor: Option<&JsValue>) -> bool {
    accessor.is_some_and(JsValue::is_callable)
}

fn key_text(key: &PropertyKey) -> String {
    match key {
        PropertyKey::String(s) => {
            let s = s.to_std_string_escaped();
            if is_identifier(&s) {
                s
            } else {
                quote(&s)
            }
        }
        PropertyKey::Index(i) => i.get().to_string(),
        PropertyKey::Symbol(sym) => {
            format!("[{}]", sym.descriptive_string().to_std_string_escaped())
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// `constructor.name` of the object's prototype, read raw; `None` for
/// objects whose prototype has no such data property.
fn constructor_name(obj: &JsObject) -> Option<String> {
    let proto = obj.prototype()?;
    let constructor = proto.borrow().properties().get(&js_string!("constructor").into())?.value()?.as_object()?;
    let name = constructor.borrow().properties().get(&js_string!("name").into())?.value()?.as_string()?;
    Some(name.to_std_string_escaped())
}

/// Quotes a string as Node does: single quotes unless the text contains
/// them, then double quotes, then backticks.
fn quote(s: &str) -> String {
    let q = if !s.contains('\'') {
        '\''
    } else if !s.contains('"') {
        '"'
    } else if !s.contains('`') {
        '`'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_like_node() {
        for (raw, quoted) in
            [("abc", "'abc'"), ("it's", "\"it's\""), ("'\"", "`'\"`"), ("a\nb", "'a\\nb'"), ("\u{1b}", "'\\x1B'")]
        {
            assert_eq!(quote(raw), quoted, "{raw:?}");
        }
    }

    #[test]
    fn clipped_text_says_how_much_was_left_out() {
        assert_eq!(clip("abcdef".into(), 10), "abcdef");
        assert_eq!(clip("abcdef".into(), 4), "abcd… (2 more bytes)");
        assert_eq!(clip("ééé".into(), 3), "é… (4 more bytes)");
    }
}
