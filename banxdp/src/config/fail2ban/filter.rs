//! A filter file read on its own, outside any jail (`banxdp regex`, the tests): its
//! `[Definition]` options with its `[Init]` parameters, tags substituted, as the filter
//! engine's [`FilterSpec`]. A jail's filter is read with the jail's options (see `jail`) and
//! reaches the engine through `config::jails::JailConfig::filter_spec`.
//!
//! Pure apart from reading the files it is pointed at (through [`Files`]).

use std::path::Path;

use indexmap::IndexMap;

use super::{
    Files,
    readers::{DefinitionReader, FILTER_OPTS, ReaderError},
    store::{FileCache, Store, StoreError, Vars},
};
use crate::filter::FilterSpec;

/// A filter that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FilterFileError {
    #[error("filter `{name}`")]
    Store {
        name: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("filter `{name}`")]
    Tags {
        name: String,
        #[source]
        source: ReaderError,
    },
    #[error("filter `{name}`: invalid {option} `{value}`")]
    NotANumber {
        name: String,
        option: String,
        value: String,
    },
}

/// Reads the filter `name` under `basedir` (`filter.d/sshd`, without `.conf`), with `params`
/// for its `[Init]` section (`mode` = `aggressive`, ...): `None` when there is no such file.
/// Its `logtype` is `file` unless `params` or the filter say otherwise.
pub fn load_filter(
    files: &dyn Files,
    basedir: &Path,
    name: &str,
    params: IndexMap<String, String>,
) -> Result<Option<FilterSpec>, FilterFileError> {
    let store_error = |source| FilterFileError::Store {
        name: name.to_string(),
        source: Box::new(source),
    };
    let Some((store, _)) =
        Store::read(files, basedir, name, &mut FileCache::default()).map_err(store_error)?
    else {
        return Ok(None);
    };
    let mut def = DefinitionReader::new(store, "filter", params);
    def.init
        .entry("logtype".into())
        .or_insert_with(|| "file".into());
    let names: Vec<&str> = FILTER_OPTS.iter().map(|(n, _)| *n).collect();
    def.read_options(&Vars::new(), &names, true)
        .map_err(store_error)?;
    let (options, bad) =
        def.combined(&[], &FILTER_OPTS)
            .map_err(|source| FilterFileError::Tags {
                name: name.to_string(),
                source,
            })?;
    if let Some((option, value)) = bad.into_iter().next() {
        return Err(FilterFileError::NotANumber {
            name: name.to_string(),
            option,
            value,
        });
    }
    Ok(Some(FilterSpec::from_options(|n| {
        options.get(n).map(super::Value::text)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::embedded::{Embedded, ROOT};

    #[test]
    fn a_shipped_filter_loads_with_its_mode() {
        let root = Path::new(ROOT);
        let normal = load_filter(&Embedded, root, "filter.d/sshd", IndexMap::new())
            .unwrap()
            .expect("banxdp ships an sshd filter");
        assert!(!normal.failregex.is_empty());
        let mut params = IndexMap::new();
        params.insert("mode".to_string(), "aggressive".to_string());
        let aggressive = load_filter(&Embedded, root, "filter.d/sshd", params)
            .unwrap()
            .unwrap();
        assert!(aggressive.failregex.len() > normal.failregex.len());
        assert!(
            load_filter(&Embedded, root, "filter.d/nothing", IndexMap::new())
                .unwrap()
                .is_none()
        );
    }
}
