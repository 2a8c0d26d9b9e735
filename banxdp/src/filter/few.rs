//! [`Few`]: a list that keeps its first item in place. The lists the tracker makes for every
//! failure (the failures of a line, the users of a connection) hold one item almost always,
//! and a `Vec` would allocate for it, and free it, once a failure.

/// A list whose first item is kept in place; the others, if any, in a vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Few<T> {
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }

    #[must_use]
    pub fn get(&self, at: usize) -> Option<&T> {
        match at {
            0 => self.first.as_ref(),
            _ => self.rest.get(at - 1),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }

    /// Puts `item` at `at` (at most [`Few::len`]), the items from there on one place later.
    pub fn insert(&mut self, at: usize, item: T) {
        assert!(at <= self.len(), "insertion at {at} past the end");
        if at == 0 {
            if let Some(old) = self.first.replace(item) {
                self.rest.insert(0, old);
            }
        } else {
            self.rest.insert(at - 1, item);
        }
    }
}

impl<T> std::ops::Index<usize> for Few<T> {
    type Output = T;

    fn index(&self, at: usize) -> &T {
        self.get(at).expect("an index within the list")
    }
}

impl<T> Extend<T> for Few<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        for item in items {
            self.push(item);
        }
    }
}

impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut few = Self::default();
        few.extend(items);
        few
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Chain<std::option::Iter<'a, T>, std::slice::Iter<'a, T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.iter().chain(&self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_vector_whatever_is_done_to_it() {
        // Random pushes and insertions, the same on both; every state compared.
        let mut next = crate::filter::generated::xorshift(0x1234_5678_9abc_def1);
        for _ in 0..200 {
            let (mut few, mut vec) = (Few::default(), Vec::new());
            for value in 0..next() % 9 {
                if next().is_multiple_of(2) {
                    few.push(value);
                    vec.push(value);
                } else {
                    let at = usize::try_from(next() % (vec.len() as u64 + 1)).expect("small");
                    few.insert(at, value);
                    vec.insert(at, value);
                }
                assert_eq!(few.len(), vec.len());
                assert_eq!(few.is_empty(), vec.is_empty());
                assert!(few.iter().eq(&vec));
                assert!((0..=vec.len()).all(|at| few.get(at) == vec.get(at)));
            }
            assert_eq!(few.clone().into_iter().collect::<Vec<_>>(), vec);
            assert_eq!(vec.iter().copied().collect::<Few<_>>(), few);
        }
    }
}
