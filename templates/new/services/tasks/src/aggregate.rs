//! The `Task` aggregate: its state, folded from its events, and one decision per command.
//! Pure: no I/O, no clock. The runtime loads the state, asks for a decision, appends.

use keel::ServiceError;
use {{crate}}_tasks::{
    AddTask, CompleteTask, RenameTask, TaskAdded, TaskAggregate, TaskCompleted, TaskEvent,
    TaskRenamed,
};

/// What the events of one task stream add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub added: bool,
    pub title: String,
    pub done: bool,
}

fn title(raw: &str) -> Result<String, ServiceError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::invalid("title", "must not be blank"));
    }
    Ok(trimmed.to_string())
}

impl TaskAggregate for Task {
    fn apply(&mut self, event: &TaskEvent) {
        match event {
            TaskEvent::TaskAdded(e) => {
                self.added = true;
                self.title = e.title.clone();
            }
            TaskEvent::TaskRenamed(e) => self.title = e.title.clone(),
            TaskEvent::TaskCompleted(_) => self.done = true,
        }
    }

    fn add_task(&self, command: &AddTask) -> Result<Vec<TaskEvent>, ServiceError> {
        Ok(vec![TaskEvent::TaskAdded(TaskAdded {
            title: title(&command.title)?,
        })])
    }

    fn rename_task(&self, command: &RenameTask) -> Result<Vec<TaskEvent>, ServiceError> {
        if !self.added {
            return Err(ServiceError::not_found("task", command.task_id));
        }
        if self.done {
            return Err(ServiceError::FailedPrecondition(
                "a task that is done cannot be renamed".into(),
            ));
        }
        Ok(vec![TaskEvent::TaskRenamed(TaskRenamed {
            title: title(&command.title)?,
        })])
    }

    fn complete_task(&self, command: &CompleteTask) -> Result<Vec<TaskEvent>, ServiceError> {
        if !self.added {
            return Err(ServiceError::not_found("task", command.task_id));
        }
        if self.done {
            return Ok(vec![]);
        }
        Ok(vec![TaskEvent::TaskCompleted(TaskCompleted {})])
    }

    fn view(&self, id: uuid::Uuid) -> Option<{{crate}}_tasks::pb::Task> {
        self.added.then(|| {{crate}}_tasks::pb::Task {
            id: id.to_string(),
            title: self.title.clone(),
            done: self.done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use {{crate}}_tasks::{TaskCommand, decide, fold};

    #[test]
    fn a_done_task_keeps_its_title() {
        let id = uuid::Uuid::now_v7();
        let mut events = decide(
            &Task::default(),
            &TaskCommand::AddTask(AddTask {
                title: " Write ".into(),
            }),
        )
        .expect("adds");
        let complete = TaskCommand::CompleteTask(CompleteTask { task_id: id });
        events.extend(decide(&fold::<Task>(&events), &complete).expect("completes"));
        let state: Task = fold(&events);
        assert!(state.done);
        assert_eq!(state.title, "Write");
        let rename = TaskCommand::RenameTask(RenameTask {
            task_id: id,
            title: "Read".into(),
        });
        assert!(matches!(
            decide(&state, &rename),
            Err(ServiceError::FailedPrecondition(_))
        ));
        assert_eq!(decide(&state, &complete).expect("again"), vec![]);
    }
}
