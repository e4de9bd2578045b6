//! The colour roles of the dashboard, as a theme file names them.

/// A colour role of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// General text.
    Text,
    /// Secondary text.
    Dim,
    /// Titles of panels and popups.
    Title,
    /// Panel borders.
    Border,
    /// The header bar's text.
    Header,
    /// The background of the selected row.
    Selected,
    /// A run that is training.
    Running,
    /// A run waiting for a free slot.
    Queued,
    /// A run waiting for the run it depends on.
    Waiting,
    /// A run paused by the user.
    Paused,
    /// A run writing a checkpoint.
    Checkpointing,
    /// A run that finished.
    Finished,
    /// A run that failed.
    Failed,
    /// A run stopped by the user.
    Stopped,
    /// A run cut off by a crash or reboot.
    Interrupted,
    /// A frozen layer group.
    Frozen,
    /// A trainable layer group.
    Trainable,
    /// The training loss line of a chart.
    TrainLoss,
    /// The validation loss line of a chart.
    ValLoss,
    /// The validation accuracy line of a chart.
    ValAccuracy,
    /// A footer acknowledgement: the request was sent.
    Pending,
    /// A footer acknowledgement: the request was done.
    Ok,
    /// A footer warning.
    Warning,
    /// A footer acknowledgement: the request was refused.
    Error,
    /// Chart markers (freeze, thaw, resume).
    Marker,
}

impl Role {
    /// Every role, in declaration order (so `Role::ALL[role as usize] == role`).
    pub const ALL: [Role; 25] = [
        Role::Text,
        Role::Dim,
        Role::Title,
        Role::Border,
        Role::Header,
        Role::Selected,
        Role::Running,
        Role::Queued,
        Role::Waiting,
        Role::Paused,
        Role::Checkpointing,
        Role::Finished,
        Role::Failed,
        Role::Stopped,
        Role::Interrupted,
        Role::Frozen,
        Role::Trainable,
        Role::TrainLoss,
        Role::ValLoss,
        Role::ValAccuracy,
        Role::Pending,
        Role::Ok,
        Role::Warning,
        Role::Error,
        Role::Marker,
    ];

    /// The role's key in a theme file's `[colors]` table (`train_loss`).
    pub fn key(self) -> &'static str {
        match self {
            Role::Text => "text",
            Role::Dim => "dim",
            Role::Title => "title",
            Role::Border => "border",
            Role::Header => "header",
            Role::Selected => "selected",
            Role::Running => "running",
            Role::Queued => "queued",
            Role::Waiting => "waiting",
            Role::Paused => "paused",
            Role::Checkpointing => "checkpointing",
            Role::Finished => "finished",
            Role::Failed => "failed",
            Role::Stopped => "stopped",
            Role::Interrupted => "interrupted",
            Role::Frozen => "frozen",
            Role::Trainable => "trainable",
            Role::TrainLoss => "train_loss",
            Role::ValLoss => "val_loss",
            Role::ValAccuracy => "val_accuracy",
            Role::Pending => "pending",
            Role::Ok => "ok",
            Role::Warning => "warning",
            Role::Error => "error",
            Role::Marker => "marker",
        }
    }

    /// The role a theme file's key names.
    pub fn from_key(key: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.key() == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_role_at_its_own_index() {
        for (index, role) in Role::ALL.into_iter().enumerate() {
            assert_eq!(role as usize, index, "{role:?}");
            assert_eq!(Role::from_key(role.key()), Some(role));
        }
    }
}
