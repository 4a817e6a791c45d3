//! `berth tag`: a new name for an existing image's target (Images.Get, then Create, or Update
//! when the name exists), as containerd's `ctr images tag`.

use anyhow::Result;
use berth_proto::images::{CreateImageRequest, GetImageRequest, Image};
use ttrpc::Code;

use crate::daemon::{ctx, not_found_as_no_such_image, Berthd, NoSuchImage};
use crate::resolve::{resolve, ImageArg};

/// Create a tag TARGET that refers to SOURCE.
#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG] or image ID (prefix).
    source: String,
    /// TARGET_IMAGE[:TAG]
    target: String,
}

/// Points `args.target` at the image `args.source` names, keeping its labels.
pub async fn run(berthd: &Berthd, args: &TagArgs) -> Result<()> {
    let images = berthd.images();
    // An ID's names all share the config; their targets can differ (index or manifest): take the first.
    let source = match resolve(&images, &args.source).await? {
        ImageArg::Name(name) => name,
        ImageArg::Id { names, .. } => names.into_iter().next().ok_or_else(|| NoSuchImage(args.source.clone()))?,
    };
    let found = images
        .get(ctx(), &GetImageRequest { name: source, ..Default::default() })
        .await
        .map_err(|err| not_found_as_no_such_image(err, &args.source))?;
    let source = found.image.into_option().ok_or_else(|| NoSuchImage(args.source.clone()))?;
    let request = CreateImageRequest {
        image: Some(Image {
            name: args.target.clone(),
            labels: source.labels,
            target: source.target,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    match images.create(ctx(), &request).await {
        Ok(_) => Ok(()),
        Err(ttrpc::Error::RpcStatus(status)) if status.code() == Code::ALREADY_EXISTS => {
            images.update(ctx(), &request).await?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}
