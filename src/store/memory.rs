//! A datastore in memory, for tests of the use cases: the same transaction rules as the
//! local document (a commit fails if another one came in between), no files.

use std::cell::RefCell;

use super::{Held, State, Store, StoreError, Transaction};

/// A document in memory, serialised as the local backend would write it.
#[derive(Debug, Default)]
pub struct Memory {
    bytes: RefCell<Option<Vec<u8>>>,
    commits: RefCell<usize>,
}

impl Memory {
    /// A datastore holding `state`.
    pub fn with(state: &State) -> Self {
        Self {
            bytes: RefCell::new(Some(state.to_json())),
            commits: RefCell::new(0),
        }
    }

    /// The document's bytes, if one was ever written.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.bytes.borrow().clone()
    }

    /// How many commits changed the document.
    pub fn commits(&self) -> usize {
        *self.commits.borrow()
    }

    fn parse(&self) -> Result<State, StoreError> {
        match &*self.bytes.borrow() {
            None => Ok(State::default()),
            Some(b) => State::from_json(b).map_err(|source| StoreError::Document {
                path: "memory".into(),
                source,
            }),
        }
    }
}

impl Store for Memory {
    fn load(&self) -> Result<State, StoreError> {
        self.parse()
    }

    fn hold(&self) -> Result<Held, StoreError> {
        Ok(Held {
            state: self.parse()?,
            _guard: Box::new(()),
        })
    }

    fn begin(&self) -> Result<(Box<dyn Transaction + '_>, State), StoreError> {
        let state = self.parse()?;
        let original = self.bytes();
        Ok((
            Box::new(MemoryTransaction {
                store: self,
                original,
            }),
            state,
        ))
    }
}

/// A write to a [`Memory`] store: compare, then swap.
struct MemoryTransaction<'a> {
    store: &'a Memory,
    original: Option<Vec<u8>>,
}

impl Transaction for MemoryTransaction<'_> {
    fn commit(&mut self, state: &State) -> Result<bool, StoreError> {
        let mut current = self.store.bytes.borrow_mut();
        if *current != self.original {
            return Err(StoreError::Conflict("memory".into()));
        }
        let bytes = state.to_json();
        if current.as_deref() == Some(bytes.as_slice()) {
            return Ok(false);
        }
        *current = Some(bytes.clone());
        self.original = Some(bytes);
        *self.store.commits.borrow_mut() += 1;
        Ok(true)
    }
}
