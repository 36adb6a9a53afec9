//! Plugin settings: the typed [`Setting`] handles and the host calls that define and
//! read them.

use super::host::{cstring, with_cname};
use super::{Host, PluginError, PluginResult};
use crate::types::*;
use std::ffi::{c_char, CString};

/// The Rust type a plugin setting reads as: `i64` (integer), `f64` (floating
/// point), `bool`, `String`, and `usize` for an enum setting (the index of its
/// option).
pub trait SettingValue: Sized {
    /// Reads setting `name` of this plugin through the host.
    fn read(host: &Host, name: &str) -> PluginResult<Self>;
}

impl SettingValue for i64 {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_int(name)
    }
}

impl SettingValue for f64 {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_real(name)
    }
}

impl SettingValue for bool {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_bool(name)
    }
}

impl SettingValue for String {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_string(name)
    }
}

impl SettingValue for usize {
    fn read(host: &Host, name: &str) -> PluginResult<Self> {
        host.get_enum(name)
    }
}

/// A setting of this plugin, returned by the `Host::define_*` call that declared
/// it: keep it in the plugin and read the current value with [`Setting::get`], so
/// the name is written once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T: SettingValue> {
    name: String,
    value: std::marker::PhantomData<fn() -> T>,
}

impl<T: SettingValue> Setting<T> {
    fn new(name: &str) -> Self {
        Setting {
            name: name.to_string(),
            value: std::marker::PhantomData,
        }
    }

    /// The setting's name without the plugin's prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The setting's current value in this process.
    pub fn get(&self, host: &Host) -> PluginResult<T> {
        T::read(host, &self.name)
    }
}

impl Host {
    pub(super) fn status(&self, st: WalkerStatus, what: &str, name: &str) -> PluginResult {
        match st {
            WalkerStatus::OK => Ok(()),
            WalkerStatus::NOT_FOUND => Err(PluginError::new(format!(
                "{what} \"{name}\": no such setting of this plugin"
            ))),
            _ => Err(PluginError::new(format!(
                "{what} \"{name}\" failed (status {})",
                st.0
            ))),
        }
    }

    /// Defines an integer setting `<plugin>.<name>`; the handle reads it
    /// ([`Setting::get`]) without repeating the name.
    #[allow(clippy::too_many_arguments)]
    pub fn define_int(
        &self,
        name: &str,
        description: &str,
        default: i64,
        min: i64,
        max: i64,
        unit: WalkerSettingUnit,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<i64>> {
        let f = self
            .api()
            .define_int
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default,
                min,
                max,
                unit,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a floating-point setting `<plugin>.<name>`; the handle reads it.
    pub fn define_real(
        &self,
        name: &str,
        description: &str,
        default: f64,
        min: f64,
        max: f64,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<f64>> {
        let f = self
            .api()
            .define_real
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default,
                min,
                max,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a boolean setting `<plugin>.<name>`; the handle reads it.
    pub fn define_bool(
        &self,
        name: &str,
        description: &str,
        default: bool,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<bool>> {
        let f = self
            .api()
            .define_bool
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe { f(self.plugin, n.as_ptr(), d.as_ptr(), default, context) };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines a string setting `<plugin>.<name>`; the handle reads it.
    pub fn define_string(
        &self,
        name: &str,
        description: &str,
        default: &str,
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<String>> {
        let f = self
            .api()
            .define_string
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d, v) = (cstring(name), cstring(description), cstring(default));
        // SAFETY: the strings are NUL-terminated and live during the call.
        let st = unsafe { f(self.plugin, n.as_ptr(), d.as_ptr(), v.as_ptr(), context) };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Defines an enum setting `<plugin>.<name>`; the handle reads it as an index into
    /// `options`.
    pub fn define_enum(
        &self,
        name: &str,
        description: &str,
        default: usize,
        options: &[&str],
        context: WalkerSettingContext,
    ) -> PluginResult<Setting<usize>> {
        let f = self
            .api()
            .define_enum
            .ok_or_else(|| PluginError::new("host cannot define settings"))?;
        let (n, d) = (cstring(name), cstring(description));
        let opts: Vec<CString> = options.iter().map(|o| cstring(o)).collect();
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        // SAFETY: all strings are NUL-terminated and live during the call.
        let st = unsafe {
            f(
                self.plugin,
                n.as_ptr(),
                d.as_ptr(),
                default as u32,
                ptrs.as_ptr(),
                ptrs.len() as u32,
                context,
            )
        };
        self.status(st, "defining setting", name)?;
        Ok(Setting::new(name))
    }

    /// Reads an integer setting of this plugin.
    pub fn get_int(&self, name: &str) -> PluginResult<i64> {
        let f = self
            .api()
            .get_int
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let mut out = 0i64;
        // SAFETY: valid string and out pointer.
        let st = with_cname(name, |n| unsafe { f(self.plugin, n, &mut out) });
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads a floating-point setting of this plugin.
    pub fn get_real(&self, name: &str) -> PluginResult<f64> {
        let f = self
            .api()
            .get_real
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let mut out = 0f64;
        // SAFETY: valid string and out pointer.
        let st = with_cname(name, |n| unsafe { f(self.plugin, n, &mut out) });
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads a boolean setting of this plugin.
    pub fn get_bool(&self, name: &str) -> PluginResult<bool> {
        let f = self
            .api()
            .get_bool
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let mut out = false;
        // SAFETY: valid string and out pointer.
        let st = with_cname(name, |n| unsafe { f(self.plugin, n, &mut out) });
        self.status(st, "reading setting", name).map(|_| out)
    }

    /// Reads an enum setting of this plugin as the option's index.
    pub fn get_enum(&self, name: &str) -> PluginResult<usize> {
        let f = self
            .api()
            .get_enum
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let mut out = 0u32;
        // SAFETY: valid string and out pointer.
        let st = with_cname(name, |n| unsafe { f(self.plugin, n, &mut out) });
        self.status(st, "reading setting", name)
            .map(|_| out as usize)
    }

    /// Reads a string setting of this plugin.
    pub fn get_string(&self, name: &str) -> PluginResult<String> {
        let f = self
            .api()
            .get_string
            .ok_or_else(|| PluginError::new("host cannot read settings"))?;
        let n = cstring(name);
        let mut buf = vec![0u8; 256];
        loop {
            let mut len = 0usize;
            // SAFETY: `buf` is writable for `buf.len()` bytes.
            let st = unsafe {
                f(
                    self.plugin,
                    n.as_ptr(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut len,
                )
            };
            if st == WalkerStatus::INVALID && len > buf.len() {
                buf.resize(len, 0);
                continue;
            }
            self.status(st, "reading setting", name)?;
            buf.truncate(len);
            return String::from_utf8(buf)
                .map_err(|e| PluginError::new(format!("setting \"{name}\" is not UTF-8: {e}")));
        }
    }
}
