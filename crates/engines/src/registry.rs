//! Which engines svcdash can run, by the names catalogs use.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Engine;

/// An engine shared by every node that runs it.
pub type EngineRef = Arc<dyn Engine>;

#[derive(Clone)]
pub struct Registry {
    engines: BTreeMap<&'static str, EngineRef>,
}

impl Registry {
    /// Every engine this build of svcdash has.
    pub fn builtin() -> Self {
        let engines: [EngineRef; 4] = [
            Arc::new(crate::postgres::Postgres),
            Arc::new(crate::redis::Redis),
            Arc::new(crate::mariadb::Mariadb),
            Arc::new(crate::rabbitmq::Rabbitmq),
        ];
        Self { engines: engines.into_iter().map(|e| (e.name(), e)).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&EngineRef> {
        self.engines.get(name)
    }

    /// The engine called `name`, or an error listing the ones there are.
    pub fn find(&self, name: &str) -> anyhow::Result<&EngineRef> {
        self.get(name).ok_or_else(|| {
            anyhow::anyhow!("there is no engine {name:?}; svcdash has {}", self.names().collect::<Vec<_>>().join(", "))
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.engines.keys().copied()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
