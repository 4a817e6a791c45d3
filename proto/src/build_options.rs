//! What a client asks for when it builds an image: docker's `build` flags as one struct, sent as
//! JSON in the first message of Builder.Build (the context follows). The CLI resolves what
//! only it can see (a `--build-arg NAME` takes NAME's value from the client's environment).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildOptions {
    /// `-t`: names for the image.
    pub tags: Vec<String>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// `--build-arg NAME=VALUE`; a `None` value is an argument named without a value that the
    /// client's environment does not set either (it stays unset, as docker's).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target`: the last stage built.
    pub target: Option<String>,
    /// `--label`: added to the image's labels.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: pull base images even when they are stored.
    pub pull: bool,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--network` of the RUN steps: none, host, or a network name; empty is berthd's default.
    pub network: Option<String>,
    /// `-q`: print only the image id.
    pub quiet: bool,
    /// A directory context berthd keeps between builds under this key (64 hex digits: the
    /// client's hash of the context's path): the client sends its entries first and then only
    /// the files berthd does not have. None: the whole context tar follows the options.
    pub context_key: Option<String>,
}
